//! Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with the HTTP
//! status a client library acts on (401, 400, 404, 413, 429 with `Retry-After`, 503, 500).
//! The core's error code travels in the response's extensions to the request log.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use deskmate_core::{Error, ErrorCode};

/// Seconds a client should wait after 429 before trying again.
const RETRY_AFTER_S: u64 = 1;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// OpenAI's error `type`.
    pub kind: &'static str,
    /// Deskmate's code, or OpenAI's for the protocol's own cases.
    pub code: String,
    pub message: String,
    pub param: Option<&'static str>,
    /// The core's code, for the request log.
    pub error_code: Option<ErrorCode>,
}

/// The core's code of a failed request, kept in the response for the request log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoggedCode(pub(crate) Option<ErrorCode>);

impl ApiError {
    pub(crate) fn unauthorized(message: &str) -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind: "invalid_request_error",
            code: "invalid_api_key".to_owned(),
            message: message.to_owned(),
            param: None,
            error_code: None,
        }
    }

    pub(crate) fn model_not_found(model: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: "model_not_found".to_owned(),
            message: format!(
                "the model \"{model}\" does not exist; the models are \"office\" and \"character\""
            ),
            param: Some("model"),
            error_code: None,
        }
    }

    pub(crate) fn not_found(path: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: ErrorCode::NotFound.as_str().to_owned(),
            message: format!("{path}: no such endpoint"),
            param: None,
            error_code: Some(ErrorCode::NotFound),
        }
    }

    pub(crate) fn invalid(param: &'static str, message: String) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code: ErrorCode::InvalidInput.as_str().to_owned(),
            message: format!("{param}: {message}"),
            param: Some(param),
            error_code: Some(ErrorCode::InvalidInput),
        }
    }

    /// A body that is not the JSON asked for, or too large.
    pub(crate) fn from_rejection(rejection: &JsonRejection) -> ApiError {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::too_large();
        }
        let status = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError {
            status,
            kind: "invalid_request_error",
            code: ErrorCode::InvalidInput.as_str().to_owned(),
            message: match status {
                StatusCode::PAYLOAD_TOO_LARGE => format!(
                    "the request body is over the limit of {} bytes",
                    crate::MAX_BODY_BYTES
                ),
                _ => rejection.body_text(),
            },
            param: None,
            error_code: Some(ErrorCode::InvalidInput),
        }
    }

    /// A body over [`crate::MAX_BODY_BYTES`].
    pub(crate) fn too_large() -> ApiError {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            kind: "invalid_request_error",
            code: ErrorCode::InvalidInput.as_str().to_owned(),
            message: format!(
                "the request body is over the limit of {} bytes",
                crate::MAX_BODY_BYTES
            ),
            param: None,
            error_code: Some(ErrorCode::InvalidInput),
        }
    }

    /// For a task of the blocking pool that did not come back.
    pub(crate) fn internal(what: &'static str, reason: String) -> ApiError {
        ApiError::from(Error::Internal { what, reason })
    }

    /// The OpenAI error object (also sent inside a stream that fails midway).
    pub(crate) fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        use ErrorCode as C;
        let code = e.code();
        let (status, kind) = match code {
            C::InvalidInput | C::MessageTooLong | C::PromptTooLong => {
                (StatusCode::BAD_REQUEST, "invalid_request_error")
            }
            C::NotFound => (StatusCode::NOT_FOUND, "invalid_request_error"),
            C::Busy | C::StoreBusy => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
            C::ModelNotLoaded
            | C::ModelMissing
            | C::ModelNotAFile
            | C::ModelUnreadable
            | C::ModelNotGguf
            | C::ModelUnsupportedVersion
            | C::ModelTruncated
            | C::ModelCorrupt
            | C::ModelLoadFailed
            | C::OutOfMemory
            | C::EngineInit
            | C::ModelUnloaded
            | C::EmbeddingModelMissing
            | C::EmbeddingRuntimeMissing => (StatusCode::SERVICE_UNAVAILABLE, "server_error"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
        };
        ApiError {
            status,
            kind,
            code: code.as_str().to_owned(),
            message: e.to_string(),
            param: None,
            error_code: Some(code),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_S));
        }
        response
            .extensions_mut()
            .insert(LoggedCode(self.error_code));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deskmate_core::error::EngineError;

    #[test]
    fn a_full_queue_is_429_with_retry_after_in_openai_shape() {
        let e = ApiError::from(Error::Engine(EngineError::Busy {
            persona: "office",
            queued: 8,
        }));
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        let body = e.body();
        assert_eq!(body["error"]["code"], "busy");
        assert_eq!(body["error"]["type"], "rate_limit_error");
        let response = e.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn a_model_that_is_not_loaded_is_503_and_bad_input_is_400() {
        let e = ApiError::from(Error::Engine(EngineError::ModelNotLoaded {
            persona: "office",
        }));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        let e = ApiError::from(Error::InvalidInput {
            field: "messages",
            message: "empty".into(),
        });
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.body()["error"]["message"], "messages: empty");
    }
}
