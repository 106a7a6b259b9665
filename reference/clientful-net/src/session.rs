//! The client session of the broker protocol, without IO: it lives in
//! `clientful-broker-proto` ([`clientful_broker_proto::client`]) and is re-exported
//! here for the callers that name it `clientful_net::session`.

pub use clientful_broker_proto::client::{
    BrokerSilent, CLIENT_MAX_FRAME, ClientConnection, ClientSession, Output, Resume, SessionError,
    is_fatal,
};
