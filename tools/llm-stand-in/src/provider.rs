//! The flow every provider route shares: parse, apply directives, decide the reply, answer
//! plainly or streamed in the route's wire format.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use crate::reply::{Conversation, Directives, Reply, Usage};
use crate::sse::{self, Streamed};
use crate::{anthropic, openai_chat, openai_responses, StandIn};

/// The wire format of a provider route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// OpenAI `POST /v1/chat/completions`.
    Chat,
    /// OpenAI `POST /v1/responses`.
    Responses,
    /// Anthropic `POST /v1/messages`.
    Messages,
}

/// Everything a wire format needs to render one reply.
#[derive(Debug)]
pub struct Ctx {
    /// The request body.
    pub req: Value,
    /// The model name as requested (directives included), echoed back as providers do.
    pub model: String,
    /// A number unique within this stand-in, for ids.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The reply decided for this request.
    pub reply: Reply,
    /// Its token counts.
    pub usage: Usage,
    /// The model name's directives.
    pub directives: Directives,
}

impl Ctx {
    /// The id of the (single) tool call of this reply.
    pub fn call_id(&self) -> String {
        format!("call_{}", self.id)
    }

    /// Whether streamed OpenAI deltas carry an `obfuscation` field: on unless
    /// `stream_options.include_obfuscation` is false, as OpenAI does.
    pub fn obfuscate(&self) -> bool {
        self.req
            .pointer("/stream_options/include_obfuscation")
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }
}

/// Padding for the `obfuscation` field of the `n`th event: OpenAI pads delta events with
/// random characters so their sizes say nothing of the text; a fixed pattern keeps the
/// stand-in deterministic while the field's presence stays realistic.
pub fn obfuscation(n: usize, delta: &str) -> String {
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let len = 1 + (16 - delta.len() % 16) % 16;
    (0..len)
        .map(|i| char::from(ALNUM[(n * 7 + i * 13) % ALNUM.len()]))
        .collect()
}

impl Api {
    fn conversation(self, req: &Value) -> Conversation {
        match self {
            Api::Chat => openai_chat::conversation(req),
            Api::Responses => openai_responses::conversation(req),
            Api::Messages => anthropic::conversation(req),
        }
    }

    fn complete(self, ctx: &Ctx) -> Value {
        match self {
            Api::Chat => openai_chat::complete(ctx),
            Api::Responses => openai_responses::complete(ctx),
            Api::Messages => anthropic::complete(ctx),
        }
    }

    fn stream(self, ctx: &Ctx, s: &mut Streamed) {
        match self {
            Api::Chat => openai_chat::stream(ctx, s),
            Api::Responses => openai_responses::stream(ctx, s),
            Api::Messages => anthropic::stream(ctx, s),
        }
    }

    /// An error response in this route's provider style.
    pub fn error(self, status: u16, message: &str, request_id: &str) -> Response {
        let (body, id_header) = match self {
            Api::Chat | Api::Responses => (openai_chat::error(status, message), "x-request-id"),
            Api::Messages => (anthropic::error(status, message, request_id), "request-id"),
        };
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (code, Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(request_id) {
            resp.headers_mut()
                .insert(HeaderName::from_static(id_header), v);
        }
        if status == 429 {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        resp
    }

    fn request_id_header(self) -> &'static str {
        match self {
            Api::Chat | Api::Responses => "x-request-id",
            Api::Messages => "request-id",
        }
    }
}

/// Answers one provider request.
pub async fn handle(state: Arc<StandIn>, api: Api, body: &[u8]) -> Response {
    let n = state.next_id();
    let request_id = format!("req_standin{n:08}");
    let req: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return api.error(400, "the body is not a JSON object", &request_id),
    };
    let Some(model) = req.get("model").and_then(Value::as_str).map(str::to_owned) else {
        return api.error(400, "model: a string is required", &request_id);
    };
    let directives = Directives::parse(&model);
    if let Some(pause) = directives.slow {
        tokio::time::sleep(pause).await;
    }
    if let Some(status) = directives.fail {
        let message = match status {
            429 => "Rate limit reached (stand-in fail-429)",
            _ => "The server had an error while processing your request (stand-in fail-500)",
        };
        return api.error(status, message, &request_id);
    }
    let conv = api.conversation(&req);
    let reply = Reply::to(&conv);
    let usage = Usage::of(&conv, &reply);
    let streaming = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let ctx = Ctx {
        req,
        model,
        id: format!("standin{n:08}"),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default(),
        reply,
        usage,
        directives,
    };
    let mut resp = if streaming {
        let (mut sink, frames) = Streamed::channel();
        let directives = ctx.directives.clone();
        // Frames are built beside the sending, as a provider streams while it generates: the
        // first event does not wait for the last one to be built.
        tokio::task::spawn_blocking(move || api.stream(&ctx, &mut sink));
        sse::respond(state, frames, &directives)
    } else {
        Json(api.complete(&ctx)).into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut()
            .insert(HeaderName::from_static(api.request_id_header()), v);
    }
    resp
}
