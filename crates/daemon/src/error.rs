//! Errors: the daemon's own (start-up), and what an API request gets back,
//! in OpenAI's `{"error":{"message","type","param","code"}}` shape.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A non-loopback address without an API key.
    #[error(
        "{addr} is reachable from other machines: give --api-key (clients then send `Authorization: Bearer KEY`), or listen on 127.0.0.1"
    )]
    NeedsApiKey {
        /// The address.
        addr: std::net::SocketAddr,
    },
    /// A `--model` that is not a model reference.
    #[error("--model {reference}: {reason}")]
    BadModel {
        /// As given.
        reference: String,
        /// Why.
        reason: String,
    },
}

/// An error answer of the API.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    param: Option<String>,
    code: Option<&'static str>,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// 400: the request is wrong.
    pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 400 about one field.
    pub(crate) fn field(param: &str, message: impl Into<String>) -> ApiError {
        let mut e = ApiError::invalid(message);
        e.param = Some(param.to_string());
        e
    }

    /// 404.
    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::NOT_FOUND, "not_found_error", message);
        e.code = Some("not_found");
        e
    }

    /// 409: the thing is in use.
    pub(crate) fn conflict(message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::CONFLICT, "invalid_request_error", message);
        e.code = Some("in_use");
        e
    }

    /// 429 with `Retry-After`.
    pub(crate) fn busy(message: impl Into<String>, retry_after: u64) -> ApiError {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message);
        e.code = Some("queue_full");
        e.retry_after = Some(retry_after);
        e
    }

    /// 401.
    pub(crate) fn unauthorized() -> ApiError {
        let mut e = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "a valid API key is needed: send `Authorization: Bearer KEY`",
        );
        e.code = Some("invalid_api_key");
        e
    }

    /// 403: a browser origin that is not allowed.
    pub(crate) fn forbidden_origin(origin: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            format!(
                "origin {origin} is not allowed: start the daemon with --allow-origin {origin}"
            ),
        )
    }

    /// 500/503: our side failed.
    pub(crate) fn server(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// With a status other than the default of its kind.
    pub(crate) fn with_status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    /// With an error code.
    pub(crate) fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    /// The JSON body (also sent as an SSE event when a stream fails).
    pub(crate) fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }

    /// The message prefixed with what was being done.
    pub(crate) fn context(mut self, doing: &str) -> ApiError {
        self.message = format!("{doing}: {}", self.message);
        self
    }

    /// An engine error as the request's answer.
    pub(crate) fn from_engine(e: &tektra_inference::Error) -> ApiError {
        use tektra_inference::Error as E;
        match e {
            E::ContextOverflow { .. } => {
                ApiError::invalid(e.to_string()).with_code("context_length_exceeded")
            }
            E::Sampling(_) | E::BadReference { .. } | E::Unsupported { .. } => {
                ApiError::invalid(e.to_string())
            }
            E::Hub(hub) if matches!(hub.status(), Some(401 | 403 | 404)) => {
                ApiError::not_found(e.to_string()).with_code("model_not_found")
            }
            E::Hub(hub) if matches!(**hub, hf_hub::HubError::Cancelled) => {
                ApiError::server(e.to_string()).with_status(StatusCode::SERVICE_UNAVAILABLE)
            }
            E::NotEnoughMemory { .. } => ApiError::server(e.to_string())
                .with_status(StatusCode::SERVICE_UNAVAILABLE)
                .with_code("not_enough_memory"),
            _ => ApiError::server(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}
