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
    /// No answer within the timeout (and which request was pending).
    #[error("no answer within {0:?} {1}")]
    Timeout(Duration, String),
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

/// The name of a request's command, as in harness.proto.
pub fn command_name(req: &Request) -> &'static str {
    use crate::pb::request::Command as C;
    match &req.command {
        None => "no command",
        Some(C::Hello(_)) => "hello",
        Some(C::RunVector(_)) => "run_vector",
        Some(C::CreateReplica(_)) => "create_replica",
        Some(C::LocalEdit(_)) => "local_edit",
        Some(C::Commit(_)) => "commit",
        Some(C::TakeOutbox(_)) => "take_outbox",
        Some(C::Deliver(_)) => "deliver",
        Some(C::Observe(_)) => "observe",
        Some(C::Persist(_)) => "persist",
        Some(C::Restart(_)) => "restart",
        Some(C::Shutdown(_)) => "shutdown",
        Some(C::CreateSpace(_)) => "create_space",
        Some(C::JoinSpace(_)) => "join_space",
        Some(C::RedeemInvite(_)) => "redeem_invite",
        Some(C::SpaceIntent(_)) => "space_intent",
        Some(C::TakeSpaceOutbox(_)) => "take_space_outbox",
        Some(C::DeliverSpace(_)) => "deliver_space",
        Some(C::ObserveSpace(_)) => "observe_space",
        Some(C::Configure(_)) => "configure",
        Some(C::ExportSecrets(_)) => "export_secrets",
        Some(C::StorageWrite(_)) => "storage_write",
        Some(C::StorageLoad(_)) => "storage_load",
        Some(C::BrokerServerRun(_)) => "broker_server_run",
        Some(C::BrokerClientRun(_)) => "broker_client_run",
        Some(C::AppLifecycle(_)) => "app_lifecycle",
        Some(C::AppAfterMerge(_)) => "app_after_merge",
        Some(C::ObserveApp(_)) => "observe_app",
        Some(C::CreateSpaceDocument(_)) => "create_space_document",
    }
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

    /// How the child ended, if it has (waits briefly for it).
    fn exit_status(&mut self) -> String {
        for _ in 0..20 {
            if let Ok(Some(st)) = self.child.try_wait() {
                return match st.code() {
                    Some(c) => format!("; it exited with status {c}"),
                    None => format!("; it was ended by a signal ({st})"),
                };
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        String::new()
    }

    fn exchange(&mut self, id: u64, bytes: Vec<u8>, what: &str) -> Result<Response, HarnessError> {
        let pending = format!("while answering request {id} ({what})");
        if let Err(e) = write_frame(&mut self.stdin, &bytes) {
            // An adapter that printed something and exited before reading its
            // input breaks the pipe; what its output says explains more than
            // the broken pipe (a stray line of text, say, CONF-8).
            let why = match self.frames.recv_timeout(Duration::from_secs(2)) {
                Ok(Err(output)) => output,
                _ => e.to_string(),
            };
            let st = self.exit_status();
            return Err(HarnessError::Gone(format!("{why} {pending}{st}")));
        }
        let frame = match self.frames.recv_timeout(self.timeout) {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => {
                let st = self.exit_status();
                return Err(HarnessError::Gone(format!("{e} {pending}{st}")));
            }
            Err(RecvTimeoutError::Timeout) => {
                return Err(HarnessError::Timeout(self.timeout, pending));
            }
            Err(RecvTimeoutError::Disconnected) => {
                let st = self.exit_status();
                return Err(HarnessError::Gone(format!("exited {pending}{st}")));
            }
        };
        let resp = Response::decode(frame.as_slice())
            .map_err(|e| HarnessError::Invalid(format!("{e} {pending}")))?;
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
        self.exchange(id, req.encode_to_vec(), command_name(&req))
    }

    fn call_raw(&mut self, id: u64, bytes: Vec<u8>) -> Result<Response, HarnessError> {
        self.exchange(id, bytes, "the unknown-command probe")
    }
}

impl Drop for StdioAdapter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An adapter that prints a line and exits before the runner writes its
    /// first request: the write meets a broken pipe, and the diagnosis still
    /// names the line (CONF-8), as when the write wins the race.
    #[test]
    fn output_before_a_broken_pipe_is_the_diagnosis() {
        let mut a = StdioAdapter::spawn("echo starting my adapter", Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("spawn: {e}"));
        // Let it print and exit first.
        for _ in 0..100 {
            if matches!(a.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let req = Request {
            id: 1,
            ..Default::default()
        };
        let text = match a.call(req) {
            Err(e) => e.to_string(),
            Ok(r) => panic!("answered: {r:?}"),
        };
        assert!(text.contains("a line of text on stdout"), "{text}");
        assert!(text.contains("starting my adapter"), "{text}");
    }
}
