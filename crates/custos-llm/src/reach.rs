//! What a request asks the model to reach, and what a response says it used.

use serde_json::Value;

use crate::WireFormat;

/// Responses tool types that reach outside the provider (prefixes; dated variants included).
const RESPONSES_REACH: &[&str] = &["web_search", "mcp", "computer_use"];

/// Anthropic tool types that reach outside the provider (prefixes of dated types).
const ANTHROPIC_REACH: &[&str] = &["web_search", "web_fetch", "computer", "mcp"];

/// A feature that makes the model reach outside (for private data mode), or None.
///
/// Chat: `web_search_options`, or a tool whose type is not `function` / `custom`. Responses: a
/// tool whose type starts with `web_search`, `mcp` or `computer_use`. Anthropic: `mcp_servers`,
/// or a tool whose type starts with `web_search`, `web_fetch`, `computer` or `mcp`. The name
/// returned is short and stable (the matched prefix or field), never caller text.
pub fn outside_reach(format: WireFormat, body: &Value) -> Option<String> {
    let tools = body
        .get("tools")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let tool_type = |t: &Value| t.get("type").and_then(Value::as_str).map(str::to_owned);
    match format {
        WireFormat::ChatCompletions => {
            if body.get("web_search_options").is_some() {
                return Some("web_search_options".into());
            }
            tools.iter().find_map(|t| match tool_type(t).as_deref() {
                Some("function") | Some("custom") => None,
                // Any other kind is a provider-run tool; name it by a fixed word, not its text.
                _ => Some("tool".into()),
            })
        }
        WireFormat::Responses => tools
            .iter()
            .find_map(|t| reach_prefix(tool_type(t).as_deref(), RESPONSES_REACH)),
        WireFormat::AnthropicMessages => {
            if body.get("mcp_servers").is_some() {
                return Some("mcp_servers".into());
            }
            tools
                .iter()
                .find_map(|t| reach_prefix(tool_type(t).as_deref(), ANTHROPIC_REACH))
        }
    }
}

fn reach_prefix(ty: Option<&str>, prefixes: &[&str]) -> Option<String> {
    let ty = ty?;
    prefixes
        .iter()
        .find(|p| ty.starts_with(**p))
        .map(|p| p.to_string())
}

/// Why a request may not go out under zero retention; each names the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageRefusal {
    /// The field asks the provider to keep the request, or to use what it kept.
    Retains(&'static str),
    /// The field is not a value the gateway can check (`"true"`, `1`, `null`...): only the
    /// value that keeps nothing, or no field at all, is accepted.
    Invalid {
        /// The field.
        field: &'static str,
        /// What it may be.
        expected: &'static str,
    },
}

/// Responses fields that keep the request, or read what the provider kept: `conversation`
/// appends this call's items to a stored conversation; `previous_response_id` continues from
/// a stored response. Absent or `null` only.
const RESPONSES_STATEFUL: &[&str] = &["conversation", "previous_response_id"];

/// Makes a request ask the provider to keep nothing, for a zero-retention policy: OpenAI keeps
/// Responses (and chat completions sent with `store: true`) unless told not to. A Responses
/// request without `store` gets `"store": false`. Refused, naming the field: `store` (and, on
/// Responses, `background`, which needs it) other than `false`; Responses `conversation` and
/// `previous_response_id` other than `null`; `prompt_cache_retention` other than `in_memory`
/// (extended caching keeps the prompt's state for up to a day). A field set to `true` or a
/// value that asks for keeping is [`StorageRefusal::Retains`]; any other value that is not the
/// safe one (`"true"`, `1`, `"false"`...) is [`StorageRefusal::Invalid`]: never guessed at.
/// Anthropic's Messages API has no such switch.
pub fn forbid_provider_storage(format: WireFormat, body: &mut Value) -> Result<(), StorageRefusal> {
    let Some(obj) = body.as_object_mut() else {
        return Ok(());
    };
    if format == WireFormat::AnthropicMessages {
        return Ok(());
    }
    let flags: &[&'static str] = match format {
        WireFormat::Responses => &["store", "background"],
        _ => &["store"],
    };
    for &field in flags {
        match obj.get(field) {
            None | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) => return Err(StorageRefusal::Retains(field)),
            Some(_) => {
                return Err(StorageRefusal::Invalid {
                    field,
                    expected: "false or absent",
                })
            }
        }
    }
    match obj.get("prompt_cache_retention") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "in_memory" || s == "in-memory" => {}
        Some(Value::String(s)) if s == "24h" => {
            return Err(StorageRefusal::Retains("prompt_cache_retention"))
        }
        Some(_) => {
            return Err(StorageRefusal::Invalid {
                field: "prompt_cache_retention",
                expected: "\"in_memory\" or absent",
            })
        }
    }
    if format == WireFormat::Responses {
        for &field in RESPONSES_STATEFUL {
            if obj.get(field).is_some_and(|v| !v.is_null()) {
                return Err(StorageRefusal::Retains(field));
            }
        }
        obj.insert("store".into(), Value::Bool(false));
    }
    Ok(())
}

/// Token usage as the upstream reports it.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Prompt (input) tokens.
    pub input: Option<u64>,
    /// Completion (output) tokens.
    pub output: Option<u64>,
}

impl Usage {
    /// Reads `{<input_key>, <output_key>}` of a usage object; fields it lacks stay as they are.
    pub(crate) fn merge(&mut self, usage: Option<&Value>, input_key: &str, output_key: &str) {
        let Some(u) = usage else { return };
        if let Some(n) = u.get(input_key).and_then(Value::as_u64) {
            self.input = Some(n);
        }
        if let Some(n) = u.get(output_key).and_then(Value::as_u64) {
            self.output = Some(n);
        }
    }
}

/// The names a format gives its usage counters.
pub(crate) fn usage_keys(format: WireFormat) -> (&'static str, &'static str) {
    match format {
        WireFormat::ChatCompletions => ("prompt_tokens", "completion_tokens"),
        WireFormat::Responses | WireFormat::AnthropicMessages => ("input_tokens", "output_tokens"),
    }
}

/// Token usage of a non-streaming response body (`usage` at the top level in every format).
pub fn usage_of(format: WireFormat, response: &Value) -> Usage {
    let (i, o) = usage_keys(format);
    let mut u = Usage::default();
    u.merge(response.get("usage"), i, o);
    u
}

#[cfg(test)]
mod tests {
    #[test]
    fn zero_retention_turns_provider_storage_off_or_refuses() {
        let mut r = json!({"model": "m", "input": "hi"});
        forbid_provider_storage(WireFormat::Responses, &mut r).unwrap();
        assert_eq!(r["store"], json!(false));
        let mut r = json!({"model": "m", "store": false});
        forbid_provider_storage(WireFormat::Responses, &mut r).unwrap();
        assert_eq!(r["store"], json!(false));
        for f in [WireFormat::Responses, WireFormat::ChatCompletions] {
            let mut asks = json!({"model": "m", "store": true});
            assert_eq!(
                forbid_provider_storage(f, &mut asks),
                Err(StorageRefusal::Retains("store"))
            );
        }
        let mut bg = json!({"model": "m", "background": true});
        assert_eq!(
            forbid_provider_storage(WireFormat::Responses, &mut bg),
            Err(StorageRefusal::Retains("background"))
        );
        // Chat completions keep nothing by default: the body is left as it is.
        let mut chat = json!({"model": "m", "messages": []});
        forbid_provider_storage(WireFormat::ChatCompletions, &mut chat).unwrap();
        assert_eq!(chat, json!({"model": "m", "messages": []}));
        let mut anthropic = json!({"model": "m", "store": true});
        forbid_provider_storage(WireFormat::AnthropicMessages, &mut anthropic).unwrap();
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn zero_retention_refuses_every_value_but_the_one_that_keeps_nothing() {
        for f in [WireFormat::Responses, WireFormat::ChatCompletions] {
            for v in [
                json!("true"),
                json!(1),
                json!("false"),
                json!(null),
                json!({}),
            ] {
                let mut b = json!({"model": "m", "store": v});
                assert_eq!(
                    forbid_provider_storage(f, &mut b),
                    Err(StorageRefusal::Invalid {
                        field: "store",
                        expected: "false or absent"
                    }),
                    "{f:?} {v}"
                );
            }
            let mut b = json!({"model": "m", "prompt_cache_retention": "24h"});
            assert_eq!(
                forbid_provider_storage(f, &mut b),
                Err(StorageRefusal::Retains("prompt_cache_retention"))
            );
            let mut b =
                json!({"model": "m", "prompt_cache_retention": "in_memory", "store": false});
            assert_eq!(forbid_provider_storage(f, &mut b), Ok(()));
        }
        let r = WireFormat::Responses;
        for (field, v) in [("background", json!(1)), ("background", json!("yes"))] {
            let mut b = json!({ field: v });
            assert!(matches!(
                forbid_provider_storage(r, &mut b),
                Err(StorageRefusal::Invalid {
                    field: "background",
                    ..
                })
            ));
        }
        for field in ["conversation", "previous_response_id"] {
            for v in [json!("conv_1"), json!({"id": "conv_1"}), json!(false)] {
                let mut b = json!({ field: v });
                assert_eq!(
                    forbid_provider_storage(r, &mut b),
                    Err(StorageRefusal::Retains(field))
                );
            }
            let mut b = json!({ field: null });
            assert_eq!(forbid_provider_storage(r, &mut b), Ok(()));
        }
    }

    #[test]
    fn chat_reach() {
        let f = WireFormat::ChatCompletions;
        assert_eq!(outside_reach(f, &json!({"messages": []})), None);
        assert_eq!(
            outside_reach(
                f,
                &json!({"tools": [{"type": "function"}, {"type": "custom"}]})
            ),
            None
        );
        assert_eq!(
            outside_reach(f, &json!({"web_search_options": {}})).as_deref(),
            Some("web_search_options")
        );
        assert_eq!(
            outside_reach(
                f,
                &json!({"tools": [{"type": "function"}, {"type": "x y"}]})
            )
            .as_deref(),
            Some("tool")
        );
    }

    #[test]
    fn responses_reach() {
        let f = WireFormat::Responses;
        for allowed in [
            "function",
            "file_search",
            "image_generation",
            "code_interpreter",
            "custom",
        ] {
            assert_eq!(
                outside_reach(f, &json!({"tools": [{"type": allowed}]})),
                None,
                "{allowed}"
            );
        }
        for (ty, name) in [
            ("web_search", "web_search"),
            ("web_search_preview_2025_03_11", "web_search"),
            ("mcp", "mcp"),
            ("computer_use_preview", "computer_use"),
        ] {
            assert_eq!(
                outside_reach(f, &json!({"tools": [{"type": "function"}, {"type": ty}]}))
                    .as_deref(),
                Some(name)
            );
        }
    }

    #[test]
    fn anthropic_reach() {
        let f = WireFormat::AnthropicMessages;
        assert_eq!(
            outside_reach(f, &json!({"tools": [{"name": "t", "input_schema": {}}]})),
            None
        );
        assert_eq!(
            outside_reach(f, &json!({"mcp_servers": []})).as_deref(),
            Some("mcp_servers")
        );
        for (ty, name) in [
            ("web_search_20250305", "web_search"),
            ("web_fetch_20250910", "web_fetch"),
            ("computer_20250124", "computer"),
            ("mcp_toolset", "mcp"),
        ] {
            assert_eq!(
                outside_reach(f, &json!({"tools": [{"type": ty}]})).as_deref(),
                Some(name)
            );
        }
        assert_eq!(
            outside_reach(f, &json!({"tools": [{"type": "bash_20250124"}]})),
            None
        );
    }

    #[test]
    fn usage_per_format() {
        let chat = json!({"usage": {"prompt_tokens": 12, "completion_tokens": 7}});
        assert_eq!(
            usage_of(WireFormat::ChatCompletions, &chat),
            Usage {
                input: Some(12),
                output: Some(7)
            }
        );
        let resp = json!({"usage": {"input_tokens": 3, "output_tokens": 4}});
        assert_eq!(
            usage_of(WireFormat::Responses, &resp),
            Usage {
                input: Some(3),
                output: Some(4)
            }
        );
        assert_eq!(
            usage_of(WireFormat::AnthropicMessages, &resp),
            Usage {
                input: Some(3),
                output: Some(4)
            }
        );
        assert_eq!(
            usage_of(WireFormat::AnthropicMessages, &chat),
            Usage::default()
        );
        assert_eq!(
            usage_of(WireFormat::Responses, &json!({})),
            Usage::default()
        );
    }
}
