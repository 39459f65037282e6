//! Where each wire format puts structure: the schema the scrubber walks a request body with.
//!
//! Fail closed: everything is caller data unless this schema names its position. Only these
//! positions are left alone, and only while their value has the shape the format gives it:
//!
//! | position | kept when | why |
//! | --- | --- | --- |
//! | the names of the fields listed below, at their own position | always | they are the wire format's field names, not caller data |
//! | `model`, `role`, `type` of a body, message, content part, item, tool or tool choice; `tool_choice` as a string; `detail`, `format`, `media_type`, `status`, `voice`, `reasoning_effort`, `service_tier`, `truncation`, `verbosity`, `modalities`, `include`, `effort`, `summary`, `ttl` at their positions below | a lowercase identifier (`[a-z][a-z0-9_.:/-]*`, at most 64 bytes) | enum values and model names the provider matches exactly; an e-mail, phone, card or SSN never has that shape, and anything else found there is scanned like text |
//! | base64 payloads: Chat/Responses `input_audio.data`, Anthropic `source.data` when `source.type` is `base64`, the payload of a `data:...;base64,` URL in a URL position | base64 characters only and longer than 256 bytes | encoded images, audio and documents, not text; shorter values are scanned |
//!
//! Everything else is scanned: every other string (ids, function and tool names, a message's
//! `name`, file names, metadata), every object key outside the positions below (metadata keys,
//! JSON schema property names, tool argument and tool input keys, prompt variables), every
//! number (a phone or card number sent as a JSON number), and URLs component by component
//! (user info, path segments, query keys and values, fragment; see `crate::url_scan`).
//! Tool-call `arguments` are JSON text: parsed and walked like tool input.

/// How a value at a position is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Node {
    /// Caller data: every key, string and number below is scanned.
    Free,
    /// An enum value or model name: kept when identifier-shaped, else scanned.
    Token,
    /// A base64 payload: kept when base64-shaped and long, else scanned.
    Binary,
    /// A URL: scanned component by component (`data:` URLs: base64 payload kept).
    Url,
    /// JSON source text (tool-call arguments): parsed and walked as [`Node::Free`].
    JsonText,
    /// An object of a known shape (or an array of them; a string here is treated as
    /// [`Node::Token`], as in `tool_choice: "auto"`).
    Obj(Shape),
    /// Caller text or an array of content parts of a known shape (a string is scanned).
    Parts(Shape),
}

/// The object shapes of the three wire formats that hold structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A Chat Completions request body.
    ChatBody,
    /// A Chat message.
    ChatMessage,
    /// A Chat content part.
    ChatPart,
    /// A Chat tool call (`messages[].tool_calls[]`).
    ChatToolCall,
    /// A Chat tool call's `function`: its `arguments` are JSON text.
    ChatFunctionCall,
    /// A tool definition (any format): its `type`, and `function` for Chat.
    Tool,
    /// A tool choice object.
    ToolChoice,
    /// `response_format`, `text.format`: the `type`.
    Format,
    /// An object whose `type` is the only structure (`reasoning`, `thinking`, `cache_control`...).
    Typed,
    /// `image_url` of a Chat part: `url` and `detail`.
    ImageUrl,
    /// `input_audio`: `data` and `format`.
    Audio,
    /// Chat `file` part: `file_data` is a data URL.
    File,
    /// Chat `audio` output settings: `voice`, `format`.
    AudioSettings,
    /// A Responses request body.
    ResponsesBody,
    /// A Responses input item (message, function call, its output...).
    ResponsesItem,
    /// A Responses content part.
    ResponsesPart,
    /// Responses `text`: `format`, `verbosity`.
    ResponsesText,
    /// An Anthropic Messages request body.
    AnthropicBody,
    /// An Anthropic message.
    AnthropicMessage,
    /// An Anthropic content block (text, image, document, tool use, tool result...).
    AnthropicBlock,
    /// An Anthropic image or document `source`.
    AnthropicSource,
}

/// The root shape of a format's request body.
pub(crate) fn root(format: crate::WireFormat) -> Shape {
    match format {
        crate::WireFormat::ChatCompletions => Shape::ChatBody,
        crate::WireFormat::Responses => Shape::ResponsesBody,
        crate::WireFormat::AnthropicMessages => Shape::AnthropicBody,
    }
}

/// The node of field `key` in an object of `shape` whose `type` is `ty`; `None`: the key is
/// not part of the format there, so the key itself is scanned and its value is caller data.
pub(crate) fn field(shape: Shape, ty: Option<&str>, key: &str) -> Option<Node> {
    use Node::*;
    use Shape::*;
    let node = match (shape, key) {
        (ChatBody | ResponsesBody | AnthropicBody, "model") => Token,
        (ChatBody, "messages") => Obj(ChatMessage),
        (ChatBody | ResponsesBody | AnthropicBody, "tools") => Obj(Tool),
        (ChatBody | ResponsesBody | AnthropicBody, "tool_choice") => Obj(ToolChoice),
        (ChatBody, "response_format") => Obj(Format),
        (ChatBody, "audio") => Obj(AudioSettings),
        (ChatBody | ResponsesBody, "reasoning_effort" | "service_tier" | "verbosity") => Token,
        (ChatBody | ResponsesBody, "prompt_cache_retention" | "truncation") => Token,
        (ChatBody, "modalities") => Token,
        (ResponsesBody, "include") => Token,
        (ResponsesBody | ChatBody, "reasoning") => Obj(Typed),
        (ResponsesBody, "input") => Parts(ResponsesItem),
        (ResponsesBody, "text") => Obj(ResponsesText),
        (AnthropicBody, "messages") => Obj(AnthropicMessage),
        (AnthropicBody, "system") => Parts(AnthropicBlock),
        (AnthropicBody, "thinking" | "cache_control") => Obj(Typed),
        (AnthropicBody, "service_tier") => Token,

        (ChatMessage, "role") => Token,
        (ChatMessage, "content") => Parts(ChatPart),
        (ChatMessage, "tool_calls") => Obj(ChatToolCall),
        (ChatMessage, "function_call") => Obj(ChatFunctionCall),
        (ChatMessage, "audio") => Free,
        (ChatPart, "type") => Token,
        (ChatPart, "image_url") => Obj(ImageUrl),
        (ChatPart, "input_audio") => Obj(Audio),
        (ChatPart, "file") => Obj(File),
        (ImageUrl, "url") => Url,
        (ImageUrl, "detail") => Token,
        (Audio, "data") => Binary,
        (Audio, "format") => Token,
        (File, "file_data") => Url,
        (AudioSettings, "voice" | "format") => Token,
        (ChatToolCall, "type") => Token,
        (ChatToolCall, "function") => Obj(ChatFunctionCall),
        (ChatFunctionCall, "arguments") => JsonText,

        (Tool, "type") => Token,
        (Tool, "function") => Obj(Tool),
        (Tool, "cache_control") => Obj(Typed),
        (ToolChoice | Typed | Format, "type") => Token,
        (ToolChoice, "mode") => Token,
        (Typed, "effort" | "summary" | "ttl") => Token,
        (ResponsesText, "format") => Obj(Format),
        (ResponsesText, "verbosity") => Token,

        (ResponsesItem, "type" | "role" | "status") => Token,
        (ResponsesItem, "content") => Parts(ResponsesPart),
        (ResponsesItem, "arguments") => JsonText,
        (ResponsesItem, "output") if ty == Some("function_call_output") => Parts(ResponsesPart),
        (ResponsesPart, "type" | "detail") => Token,
        (ResponsesPart, "image_url" | "file_url" | "file_data") => Url,
        (ResponsesPart, "input_audio") => Obj(Audio),

        (AnthropicMessage, "role") => Token,
        (AnthropicMessage, "content") => Parts(AnthropicBlock),
        (AnthropicBlock, "type") => Token,
        (AnthropicBlock, "source") => Obj(AnthropicSource),
        (AnthropicBlock, "content") if ty == Some("tool_result") => Parts(AnthropicBlock),
        (AnthropicBlock, "cache_control") => Obj(Typed),
        (AnthropicSource, "type" | "media_type") => Token,
        (AnthropicSource, "data") if ty == Some("base64") => Binary,
        (AnthropicSource, "url") => Url,
        (AnthropicSource, "content") => Parts(AnthropicBlock),
        _ => return None,
    };
    Some(node)
}

/// Longest value kept unscanned at a [`Node::Token`] position.
const MAX_TOKEN: usize = 64;

/// Shortest value kept unscanned at a [`Node::Binary`] position: real payloads are far
/// longer, and a short one (a card number is base64-shaped too) is cheap to scan.
const MIN_BINARY: usize = 257;

/// True for an enum value or model name as the formats spell them: a lowercase letter, then
/// lowercase letters, digits and `_ . : / -`.
pub(crate) fn is_token(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TOKEN
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_.:/-".contains(c))
}

/// True for a long run of base64 (standard or URL-safe alphabet, padding, line breaks).
pub(crate) fn is_binary(s: &str) -> bool {
    s.len() >= MIN_BINARY
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"+/=-_\r\n".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_lowercase_identifiers_only() {
        for t in [
            "user",
            "gpt-4o",
            "input_text",
            "image/png",
            "web_search_20250305",
        ] {
            assert!(is_token(t), "{t}");
        }
        for t in [
            "ada@example.com",
            "4155552671",
            "Ana",
            "a b",
            "",
            &"a".repeat(65),
        ] {
            assert!(!is_token(t), "{t}");
        }
    }

    #[test]
    fn binary_is_long_base64() {
        assert!(is_binary(&"QUJD".repeat(100)));
        assert!(!is_binary("4111111111111111"));
        assert!(!is_binary(&format!(
            "{}ada@example.com",
            "QUJD".repeat(100)
        )));
    }
}
