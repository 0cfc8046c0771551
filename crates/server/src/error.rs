//! Protocol errors: one kind per situation, mapped to a gRPC status code and an HTTP status,
//! with a message that names the model, the field and the fix.

use lalarand_runtime::serve::ServeError;

/// Why a request failed, as the protocol says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Malformed request, wrong shape or datatype, bad shared-memory reference.
    InvalidArgument,
    /// Unknown model, version, output or shared-memory region.
    NotFound,
    /// No or a wrong bearer token.
    Unauthenticated,
    /// Too early (the task's minimum inter-arrival time under `--early reject`), too many
    /// waiting, or a request over the size limit.
    ResourceExhausted,
    /// The server is stopping, or the task is not served to clients (periodic).
    Unavailable,
    /// The job failed, was aborted or cancelled.
    Internal,
    /// Registering a region that already exists.
    AlreadyExists,
}

/// A protocol error: its [`Code`] and a message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ProtocolError {
    pub code: Code,
    pub message: String,
}

impl ProtocolError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// The HTTP status of this error.
    pub fn http_status(&self) -> u16 {
        match self.code {
            Code::InvalidArgument => 400,
            Code::NotFound => 404,
            Code::Unauthenticated => 401,
            Code::ResourceExhausted => 429,
            Code::Unavailable => 503,
            Code::Internal => 500,
            Code::AlreadyExists => 409,
        }
    }

    /// The gRPC status of this error.
    pub fn grpc_status(&self) -> tonic::Status {
        let code = match self.code {
            Code::InvalidArgument => tonic::Code::InvalidArgument,
            Code::NotFound => tonic::Code::NotFound,
            Code::Unauthenticated => tonic::Code::Unauthenticated,
            Code::ResourceExhausted => tonic::Code::ResourceExhausted,
            Code::Unavailable => tonic::Code::Unavailable,
            Code::Internal => tonic::Code::Internal,
            Code::AlreadyExists => tonic::Code::AlreadyExists,
        };
        tonic::Status::new(code, self.message.clone())
    }
}

impl From<ServeError> for ProtocolError {
    /// The runtime's message names the task and the reason; the code says who should act.
    fn from(e: ServeError) -> Self {
        let code = match &e {
            ServeError::UnknownTask { .. } => Code::NotFound,
            ServeError::Input { .. } => Code::InvalidArgument,
            ServeError::TooEarly { .. } | ServeError::Backlog { .. } => Code::ResourceExhausted,
            ServeError::Stopped { .. } | ServeError::WrongKind { .. } | ServeError::Cancelled { .. } => {
                Code::Unavailable
            }
            _ => Code::Internal,
        };
        Self::new(code, e.to_string())
    }
}

/// Why the front end could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A `--listen` URL that is not one of the supported forms.
    #[error("--listen {url}: {problem}")]
    Listen { url: String, problem: String },
    /// Binding a non-loopback address without `--allow-remote` and a token.
    #[error("--listen {url}: {problem}")]
    Security { url: String, problem: String },
    /// The OS refused the socket.
    #[error("--listen {url}: cannot bind: {error}")]
    Bind { url: String, error: std::io::Error },
    /// The token file is unreadable or empty.
    #[error("--token-file {path}: {problem}")]
    Token { path: String, problem: String },
    #[error("the front end's threads: {0}")]
    Runtime(std::io::Error),
}
