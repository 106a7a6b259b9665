//! The gRPC binding of the harness protocol (spec CONF-10, CONF-50): the service
//! `clientful.conformance.v1.Harness` with one unary method, `Call`, carrying the
//! same `Request` and `Response` messages as the stdio binding.
//!
//! [`GrpcAdapter`] is the runner's side. It sends each request as raw bytes
//! through a pass-through codec, so that the unknown-command probe (a field from
//! the reserved range, CONF-27) reaches the implementation exactly as over stdio.
//! [`serve_reference`] serves the reference implementation (or a saboteur).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Status, transport::Endpoint};

use crate::adapter::{Adapter, HarnessError};
use crate::pb::{self, harness_server};
use crate::reference::ReferenceAdapter;
use crate::saboteur::Saboteur;

/// The method path of `Harness.Call`.
pub const CALL_PATH: &str = "/clientful.conformance.v1.Harness/Call";

/// Frames larger than this are refused, as over stdio (CONF-6).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Sends bytes as they are; decodes the answer as a `Response`.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

#[derive(Debug, Clone, Copy, Default)]
struct RawEncoder;

#[derive(Debug, Clone, Copy, Default)]
struct ResponseDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for ResponseDecoder {
    type Item = pb::Response;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<pb::Response>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        pb::Response::decode(bytes)
            .map(Some)
            .map_err(|e| Status::internal(format!("response does not decode: {e}")))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = pb::Response;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

/// An implementation reached over gRPC.
pub struct GrpcAdapter {
    rt: tokio::runtime::Runtime,
    client: tonic::client::Grpc<tonic::transport::Channel>,
    timeout: Duration,
}

impl std::fmt::Debug for GrpcAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcAdapter")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl GrpcAdapter {
    /// Connects to `url` (`http://host:port`).
    pub fn connect(url: &str, timeout: Duration) -> Result<Self, HarnessError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| HarnessError::Gone(e.to_string()))?;
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| HarnessError::Gone(format!("bad url {url}: {e}")))?
            .connect_timeout(timeout)
            .timeout(timeout);
        let channel = rt
            .block_on(endpoint.connect())
            .map_err(|e| HarnessError::Gone(format!("cannot connect to {url}: {e}")))?;
        let client = tonic::client::Grpc::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        Ok(GrpcAdapter {
            rt,
            client,
            timeout,
        })
    }

    fn exchange(&mut self, id: u64, bytes: Vec<u8>) -> Result<pb::Response, HarnessError> {
        let client = &mut self.client;
        let timeout = self.timeout;
        let resp = self.rt.block_on(async move {
            tokio::time::timeout(timeout, async {
                client
                    .ready()
                    .await
                    .map_err(|e| HarnessError::Gone(e.to_string()))?;
                let path = tonic::codegen::http::uri::PathAndQuery::from_static(CALL_PATH);
                client
                    .unary(tonic::Request::new(bytes), path, RawCodec)
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(|s| HarnessError::Gone(format!("gRPC status {s}")))
            })
            .await
            .map_err(|_| HarnessError::Timeout(timeout, format!("while answering request {id}")))?
        })?;
        if resp.id != id {
            return Err(HarnessError::Invalid(format!(
                "id {} answered to request {id}",
                resp.id
            )));
        }
        Ok(resp)
    }
}

impl Adapter for GrpcAdapter {
    fn call(&mut self, req: pb::Request) -> Result<pb::Response, HarnessError> {
        let id = req.id;
        self.exchange(id, req.encode_to_vec())
    }

    fn call_raw(&mut self, id: u64, bytes: Vec<u8>) -> Result<pb::Response, HarnessError> {
        self.exchange(id, bytes)
    }
}

/// A request for the worker thread, with where to send the answer.
type Job = (pb::Request, tokio::sync::oneshot::Sender<pb::Response>);

struct Service {
    /// The reference runs on its own thread: some commands (the storage vectors)
    /// run their own async runtime, which cannot start inside the server's.
    worker: Mutex<std::sync::mpsc::Sender<Job>>,
    shutdown: Arc<tokio::sync::Notify>,
}

#[tonic::async_trait]
impl harness_server::Harness for Service {
    async fn call(
        &self,
        request: tonic::Request<pb::Request>,
    ) -> Result<tonic::Response<pb::Response>, Status> {
        let req = request.into_inner();
        let stop = matches!(req.command, Some(pb::request::Command::Shutdown(_)));
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.worker
            .lock()
            .map_err(|_| Status::internal("worker poisoned"))?
            .send((req, tx))
            .map_err(|_| Status::internal("the reference worker stopped"))?;
        let resp = rx
            .await
            .map_err(|_| Status::internal("the reference worker dropped the request"))?;
        if stop {
            self.shutdown.notify_one();
        }
        Ok(tonic::Response::new(resp))
    }
}

/// Serves the reference (or a saboteur) over gRPC on `addr` until a `shutdown`
/// command; `on_bound` receives the bound address (port 0 picks a free one).
pub fn serve_reference(
    addr: SocketAddr,
    saboteur: Option<Saboteur>,
    on_bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        on_bound(listener.local_addr()?);
        let shutdown = Arc::new(tokio::sync::Notify::new());
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::spawn(move || {
            let mut adapter = ReferenceAdapter::with_saboteur(saboteur);
            while let Ok((req, reply)) = queue.recv() {
                let _ = reply.send(adapter.handle(req));
            }
        });
        let svc = Service {
            worker: Mutex::new(jobs),
            shutdown: shutdown.clone(),
        };
        let server = harness_server::HarnessServer::new(svc)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        tonic::transport::Server::builder()
            .add_service(server)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async move { shutdown.notified().await },
            )
            .await
            .map_err(std::io::Error::other)
    })
}
