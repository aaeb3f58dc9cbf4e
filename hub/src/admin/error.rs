//! API errors: every failure is a 4xx/5xx with a JSON body
//! `{"error": "<code>", "message": "<what was wrong>"}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
}

impl From<queue::QueueError> for ApiError {
    fn from(e: queue::QueueError) -> ApiError {
        use queue::QueueError as Q;
        let (status, code) = match &e {
            Q::UnknownTopicOrPartition { .. } => {
                (StatusCode::NOT_FOUND, "unknown_topic_or_partition")
            }
            Q::TopicExists(_) => (StatusCode::CONFLICT, "topic_exists"),
            Q::GroupNotEmpty(_) => (StatusCode::CONFLICT, "group_not_empty"),
            Q::InvalidArgument(_) => (StatusCode::BAD_REQUEST, "invalid_argument"),
            Q::InvalidTopic(..) => (StatusCode::BAD_REQUEST, "invalid_topic"),
            Q::MessageTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "message_too_large"),
            Q::OffsetOutOfRange { .. } => (StatusCode::BAD_REQUEST, "offset_out_of_range"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "queue_error"),
        };
        ApiError {
            status,
            code,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.code, "message": self.message }));
        (self.status, body).into_response()
    }
}

/// Unknown paths under the credential: a JSON 404 like every other error.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", uri.path()))
}
