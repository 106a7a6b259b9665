//! Adapters: how the runner talks to an implementation. [`StdioAdapter`] runs any
//! implementation as a child process speaking the framed harness protocol.

use std::io::{BufReader, BufWriter};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use prost::Message;

use crate::framing::{read_frame, write_frame};
use crate::pb::{Request, Response};

/// A failure of the harness itself (not of a test): exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The implementation exited, closed its output, or wrote a bad frame.
    #[error("the implementation stopped answering: {0}")]
    Gone(String),
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// An answer that is not a valid Response, or has the wrong id.
    #[error("invalid response: {0}")]
    Invalid(String),
}

/// Something the runner can send requests to.
pub trait Adapter {
    /// Sends one request and returns its response.
    fn call(&mut self, req: Request) -> Result<Response, HarnessError>;
    /// Sends raw request bytes (for probes with unknown commands).
    fn call_raw(&mut self, id: u64, bytes: Vec<u8>) -> Result<Response, HarnessError>;
}

/// A boxed adapter borrowed as `&mut dyn Adapter` for a run.
pub fn borrow(b: &mut Box<dyn Adapter>) -> &mut dyn Adapter {
    &mut **b
}

/// An implementation running as a child process (CONF-2).
pub struct StdioAdapter {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    frames: Receiver<Result<Vec<u8>, String>>,
    timeout: Duration,
}

impl StdioAdapter {
    /// Starts `command` through `sh -c 'exec <command>'`.
    pub fn spawn(command: &str, timeout: Duration) -> Result<Self, HarnessError> {
        // `exec`, so that killing the child kills the implementation itself rather
        // than only the shell around it.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {command}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| HarnessError::Gone(format!("cannot start: {e}")))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| HarnessError::Gone("no stdin".into()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| HarnessError::Gone("no stdout".into()))?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let item = match read_frame(&mut r) {
                    Ok(Some(f)) => Ok(f),
                    Ok(None) => Err("closed its output".to_string()),
                    Err(e) => Err(e.to_string()),
                };
                let stop = item.is_err();
                if tx.send(item).is_err() || stop {
                    break;
                }
            }
        });
        Ok(StdioAdapter {
            child,
            stdin: BufWriter::new(stdin),
            frames: rx,
            timeout,
        })
    }

    fn exchange(&mut self, id: u64, bytes: Vec<u8>) -> Result<Response, HarnessError> {
        write_frame(&mut self.stdin, &bytes).map_err(|e| HarnessError::Gone(e.to_string()))?;
        let frame = match self.frames.recv_timeout(self.timeout) {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => return Err(HarnessError::Gone(e)),
            Err(RecvTimeoutError::Timeout) => return Err(HarnessError::Timeout(self.timeout)),
            Err(RecvTimeoutError::Disconnected) => return Err(HarnessError::Gone("exited".into())),
        };
        let resp =
            Response::decode(frame.as_slice()).map_err(|e| HarnessError::Invalid(e.to_string()))?;
        if resp.id != id {
            return Err(HarnessError::Invalid(format!(
                "id {} answered to request {id}",
                resp.id
            )));
        }
        Ok(resp)
    }
}

impl Adapter for StdioAdapter {
    fn call(&mut self, req: Request) -> Result<Response, HarnessError> {
        let id = req.id;
        self.exchange(id, req.encode_to_vec())
    }

    fn call_raw(&mut self, id: u64, bytes: Vec<u8>) -> Result<Response, HarnessError> {
        self.exchange(id, bytes)
    }
}

impl Drop for StdioAdapter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
