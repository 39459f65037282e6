//! Stream restoration per wire format: for any cutting of the streamed texts, the deltas sent on
//! concatenate to the whole text restored, whatever reaches the caller is valid for its SDK,
//! and nothing more than a placeholder prefix per open text is held.

mod common;

use custos_llm::{restore_text, SseEvent, SseParser, StreamRestorer, TextMode, Usage, WireFormat};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Runs events through a restorer (ending with `finish()`), checking the held bound after each.
fn run(format: WireFormat, events: Vec<SseEvent>) -> (Vec<SseEvent>, Usage) {
    let mut s = StreamRestorer::new(format, common::map());
    let mut out = Vec::new();
    for e in events {
        out.extend(s.on_event(e).unwrap());
        // Two open texts (a message and a tool call's arguments), each at most a placeholder
        // prefix; JSON text may also hold an escape cut short (`\u003`, 5 bytes).
        assert!(s.held() < 2 * common::max_len() + 5, "held {}", s.held());
    }
    out.extend(s.finish());
    assert_eq!(s.held(), 0);
    (out, s.usage())
}

fn data(e: &SseEvent) -> Value {
    serde_json::from_str(&e.data).unwrap()
}

/// Sends events through the wire encoding and the parser, cut at arbitrary bytes.
fn over_the_wire(events: &[SseEvent], cuts: &[u16]) -> Vec<SseEvent> {
    let wire: Vec<u8> = events.iter().flat_map(|e| e.to_bytes().to_vec()).collect();
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|c| *c as usize % (wire.len() + 1))
        .collect();
    at.sort_unstable();
    let mut p = SseParser::new(1 << 16);
    let mut out = Vec::new();
    let mut prev = 0;
    for a in at.into_iter().chain(std::iter::once(wire.len())) {
        out.extend(p.push(&wire[prev..a]).unwrap());
        prev = a;
    }
    out.extend(p.finish().unwrap());
    out
}

// ---------- chat completions ----------

fn chat_chunk(choice: Value) -> SseEvent {
    SseEvent::data(
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "m", "choices": [choice]})
            .to_string(),
    )
}

fn chat_events(content: &[String], args: &[String], finish: bool, done: bool) -> Vec<SseEvent> {
    let mut ev = vec![chat_chunk(
        json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}),
    )];
    ev.extend(
        content.iter().map(|p| {
            chat_chunk(json!({"index": 0, "delta": {"content": p}, "finish_reason": null}))
        }),
    );
    ev.push(chat_chunk(json!({"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    ]}, "finish_reason": null})));
    ev.extend(args.iter().map(|p| {
        chat_chunk(json!({"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": p}}]}, "finish_reason": null}))
    }));
    if finish {
        ev.push(chat_chunk(
            json!({"index": 0, "delta": {}, "finish_reason": "tool_calls"}),
        ));
    }
    ev.push(SseEvent::data(
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "m", "choices": [],
               "usage": {"prompt_tokens": 11, "completion_tokens": 22}})
        .to_string(),
    ));
    if done {
        ev.push(SseEvent::data("[DONE]"));
    }
    ev
}

/// (content, arguments) as an SDK would accumulate them from chunks.
fn chat_texts(out: &[SseEvent]) -> (String, String) {
    let (mut content, mut args) = (String::new(), String::new());
    for e in out {
        if e.data == "[DONE]" {
            continue;
        }
        let v = data(e);
        assert_eq!(v["object"], "chat.completion.chunk");
        assert_eq!(v["id"], "chatcmpl-1");
        for c in v["choices"].as_array().unwrap() {
            assert_eq!(c["index"], 0);
            if let Some(s) = c["delta"]["content"].as_str() {
                content.push_str(s);
            }
            for t in c["delta"]["tool_calls"].as_array().into_iter().flatten() {
                assert_eq!(t["index"], 0);
                args.push_str(t["function"]["arguments"].as_str().unwrap_or(""));
            }
        }
    }
    (content, args)
}

#[test]
fn chat_placeholder_split_across_chunks() {
    let p = common::PAIRS[0].0;
    let content = vec![format!("Hi {}", &p[..9]), format!("{} bye", &p[9..])];
    let (out, usage) = run(
        WireFormat::ChatCompletions,
        chat_events(&content, &[], true, true),
    );
    assert_eq!(data(&out[1])["choices"][0]["delta"]["content"], "Hi ");
    assert_eq!(
        data(&out[2])["choices"][0]["delta"]["content"],
        "ada@example.com bye"
    );
    assert_eq!(out.last().unwrap().data, "[DONE]");
    assert_eq!(
        usage,
        Usage {
            input: Some(11),
            output: Some(22)
        }
    );
}

#[test]
fn chat_finish_chunk_releases_held_text_and_arguments_are_escaped() {
    let person = common::PAIRS[2].0;
    let content = vec!["tail <EMAIL".to_string()];
    let args = vec![
        format!("{{\"who\":\"{}", &person[..6]),
        format!("{}\"}}", &person[6..]),
    ];
    let (out, _) = run(
        WireFormat::ChatCompletions,
        chat_events(&content, &args, true, true),
    );
    let finish = out
        .iter()
        .find(|e| e.data.contains("\"finish_reason\":\"tool_calls\""))
        .unwrap();
    let (content, args) = chat_texts(&out);
    assert_eq!(content, "tail <EMAIL");
    let parsed: Value = serde_json::from_str(&args).unwrap();
    assert_eq!(parsed["who"], common::PAIRS[2].1);
    // The held "<EMAIL" went out in the finishing chunk, not after it.
    assert_eq!(data(finish)["choices"][0]["delta"]["content"], "<EMAIL");
}

#[test]
fn chat_done_flushes_held_text_in_a_synthesized_chunk_first() {
    let content = vec!["x <PERSON_b".to_string()];
    let (out, _) = run(
        WireFormat::ChatCompletions,
        chat_events(&content, &[], false, true),
    );
    let n = out.len();
    assert_eq!(out[n - 1].data, "[DONE]");
    let synth = data(&out[n - 2]);
    assert_eq!(synth["choices"][0]["delta"]["content"], "<PERSON_b");
    assert_eq!(synth["model"], "m");
    assert_eq!(synth["created"], 7);
}

#[test]
fn chat_refusal_audio_legacy_function_call_and_two_choices() {
    let (a, b) = common::PAIRS[0].0.split_at(10);
    let (c, d) = common::PAIRS[2].0.split_at(4);
    let events = vec![
        chat_chunk(json!({"index": 0, "delta": {"refusal": format!("no {a}"),
            "audio": {"id": "au_1", "transcript": c}}, "finish_reason": null})),
        chat_chunk(json!({"index": 1, "delta": {"content": a,
            "function_call": {"name": "f", "arguments": format!("{{\"x\":\"{c}")}}, "finish_reason": null})),
        chat_chunk(json!({"index": 1, "delta": {"content": b,
            "function_call": {"arguments": format!("{d}\"}}")}}, "finish_reason": "stop"})),
        chat_chunk(
            json!({"index": 0, "delta": {"refusal": b, "audio": {"transcript": d}}, "finish_reason": null}),
        ),
        SseEvent::data("[DONE]"),
    ];
    let (out, _) = run(WireFormat::ChatCompletions, events);
    let mut acc = std::collections::BTreeMap::<(u64, &str), String>::new();
    for e in &out[..out.len() - 1] {
        for ch in data(e)["choices"].as_array().unwrap() {
            let i = ch["index"].as_u64().unwrap();
            for ptr in [
                "/refusal",
                "/audio/transcript",
                "/content",
                "/function_call/arguments",
            ] {
                if let Some(s) = ch["delta"].pointer(ptr).and_then(Value::as_str) {
                    acc.entry((i, ptr)).or_default().push_str(s);
                }
            }
        }
    }
    assert_eq!(acc[&(0, "/refusal")], "no ada@example.com");
    assert_eq!(acc[&(0, "/audio/transcript")], common::PAIRS[2].1);
    assert_eq!(acc[&(1, "/content")], "ada@example.com");
    let args: Value = serde_json::from_str(&acc[&(1, "/function_call/arguments")]).unwrap();
    assert_eq!(args["x"], common::PAIRS[2].1);
    // Nothing was held at the end, so no chunk was synthesized.
    assert_eq!(out.len(), 5);
}

#[test]
fn chat_unchanged_chunks_are_forwarded_byte_for_byte() {
    let e = SseEvent::data(
        r#"{"z":1,"choices":[{"index":0,"delta":{"content":"plain text"},"finish_reason":null}],"a":2}"#,
    );
    let (out, _) = run(WireFormat::ChatCompletions, vec![e.clone()]);
    assert_eq!(out, vec![e]);
}

#[test]
fn non_json_data_is_restored_whole() {
    let p = common::PAIRS[0].0;
    for format in [
        WireFormat::ChatCompletions,
        WireFormat::Responses,
        WireFormat::AnthropicMessages,
    ] {
        let e = SseEvent::named("note", format!("hello {p}"));
        let (out, _) = run(format, vec![e]);
        assert_eq!(out[0].data, "hello ada@example.com");
        assert_eq!(out[0].event.as_deref(), Some("note"));
    }
}

// ---------- responses ----------

fn resp_event(ty: &str, mut body: Value) -> SseEvent {
    body["type"] = json!(ty);
    SseEvent::named(ty, body.to_string())
}

fn resp_events(text_pieces: &[String], args: &[String], done: bool) -> Vec<SseEvent> {
    let (text, arguments) = (text_pieces.concat(), args.concat());
    let mut seq = 0u64;
    let mut next = || {
        seq += 1;
        seq
    };
    let mut ev = vec![resp_event(
        "response.created",
        json!({"sequence_number": next(), "response": {"id": "resp_1", "instructions": common::PAIRS[3].0}}),
    )];
    for p in text_pieces {
        ev.push(resp_event(
            "response.output_text.delta",
            json!({"sequence_number": next(),
            "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": p, "logprobs": []}),
        ));
    }
    for p in args {
        ev.push(resp_event(
            "response.function_call_arguments.delta",
            json!({"sequence_number": next(),
            "item_id": "fc_1", "output_index": 1, "delta": p}),
        ));
    }
    if done {
        ev.push(resp_event("response.output_text.done", json!({"sequence_number": next(),
            "item_id": "msg_1", "output_index": 0, "content_index": 0, "text": text, "logprobs": []})));
        ev.push(resp_event(
            "response.function_call_arguments.done",
            json!({"sequence_number": next(),
            "item_id": "fc_1", "output_index": 1, "arguments": arguments}),
        ));
        ev.push(resp_event("response.completed", json!({"sequence_number": next(),
            "response": {"output": [{"type": "message", "content": [{"type": "output_text", "text": text}]}],
                         "usage": {"input_tokens": 5, "output_tokens": 6}}})));
    }
    ev
}

/// (text, arguments) accumulated from delta events; checks numbering and done events.
fn resp_texts(out: &[SseEvent], whole: (&str, &str)) -> (String, String) {
    let (mut text, mut args) = (String::new(), String::new());
    let mut last_seq = 0;
    for e in out {
        let v = data(e);
        let seq = v["sequence_number"].as_u64().unwrap();
        assert!(seq > last_seq, "sequence numbers must increase");
        last_seq = seq;
        assert_eq!(e.event.as_deref(), v["type"].as_str());
        match v["type"].as_str().unwrap() {
            "response.output_text.delta" => text.push_str(v["delta"].as_str().unwrap()),
            "response.function_call_arguments.delta" => args.push_str(v["delta"].as_str().unwrap()),
            "response.output_text.done" => {
                assert_eq!(
                    v["text"],
                    restore_text(whole.0, &common::map(), TextMode::Plain)
                );
                assert_eq!(
                    text,
                    v["text"].as_str().unwrap(),
                    "deltas before done add up"
                );
            }
            "response.function_call_arguments.done" => {
                let want = restore_text(whole.1, &common::map(), TextMode::JsonString);
                assert_eq!(v["arguments"], want);
                assert_eq!(args, want);
            }
            "response.created" => assert_eq!(v["response"]["instructions"], common::PAIRS[3].1),
            _ => {}
        }
    }
    (text, args)
}

#[test]
fn responses_done_releases_a_numbered_delta_first() {
    let pieces = vec!["a <PERSON_ba98".to_string()];
    let (out, usage) = run(WireFormat::Responses, resp_events(&pieces, &[], true));
    let types: Vec<String> = out
        .iter()
        .map(|e| data(e)["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.function_call_arguments.done",
            "response.completed"
        ]
    );
    assert_eq!(data(&out[1])["delta"], "a ");
    assert_eq!(data(&out[2])["delta"], "<PERSON_ba98");
    assert_eq!(data(&out[2])["item_id"], "msg_1");
    resp_texts(&out, ("a <PERSON_ba98", ""));
    assert_eq!(
        usage,
        Usage {
            input: Some(5),
            output: Some(6)
        }
    );
}

#[test]
fn responses_malformed_delta_is_an_error() {
    let mut s = StreamRestorer::new(WireFormat::Responses, common::map());
    let err = s
        .on_event(SseEvent::named(
            "response.output_text.delta",
            "{not json ada@example.com",
        ))
        .unwrap_err();
    assert!(!err.to_string().contains("ada"));
}

// ---------- anthropic ----------

fn anth_event(ty: &str, mut body: Value) -> SseEvent {
    body["type"] = json!(ty);
    SseEvent::named(ty, body.to_string())
}

fn anth_events(text_pieces: &[String], json_pieces: &[String], stop: bool) -> Vec<SseEvent> {
    let mut ev = vec![
        anth_event(
            "message_start",
            json!({"message": {"id": "msg_1", "content": [], "usage": {"input_tokens": 9, "output_tokens": 1}}}),
        ),
        anth_event(
            "content_block_start",
            json!({"index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        anth_event("ping", json!({})),
    ];
    for p in text_pieces {
        ev.push(anth_event(
            "content_block_delta",
            json!({"index": 0, "delta": {"type": "text_delta", "text": p}}),
        ));
    }
    if stop {
        ev.push(anth_event("content_block_stop", json!({"index": 0})));
    }
    ev.push(anth_event("content_block_start", json!({"index": 1, "content_block": {"type": "tool_use", "id": "tu", "name": "f", "input": {}}})));
    for p in json_pieces {
        ev.push(anth_event(
            "content_block_delta",
            json!({"index": 1, "delta": {"type": "input_json_delta", "partial_json": p}}),
        ));
    }
    if stop {
        ev.push(anth_event("content_block_stop", json!({"index": 1})));
        ev.push(anth_event(
            "message_delta",
            json!({"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 42}}),
        ));
        ev.push(anth_event("message_stop", json!({})));
    }
    ev
}

/// (text, partial JSON) accumulated per block; checks no delta follows its block's stop.
fn anth_texts(out: &[SseEvent]) -> (String, String) {
    let (mut text, mut json_text) = (String::new(), String::new());
    let mut stopped = [false, false];
    for e in out {
        let v = data(e);
        assert_eq!(e.event.as_deref(), v["type"].as_str());
        match v["type"].as_str().unwrap() {
            "content_block_delta" => {
                let i = v["index"].as_u64().unwrap() as usize;
                assert!(!stopped[i], "delta after its block stopped");
                match v["delta"]["type"].as_str().unwrap() {
                    "text_delta" => text.push_str(v["delta"]["text"].as_str().unwrap()),
                    "input_json_delta" => {
                        json_text.push_str(v["delta"]["partial_json"].as_str().unwrap())
                    }
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => stopped[v["index"].as_u64().unwrap() as usize] = true,
            _ => {}
        }
    }
    (text, json_text)
}

#[test]
fn anthropic_stop_releases_a_delta_first_and_usage_is_read() {
    let person = common::PAIRS[2].0;
    let texts = vec!["hi <US_SSN_a1".to_string()];
    let json_pieces = vec![
        format!("{{\"n\": \"{}", &person[..3]),
        format!("{}\"}}", &person[3..]),
    ];
    let (out, usage) = run(
        WireFormat::AnthropicMessages,
        anth_events(&texts, &json_pieces, true),
    );
    let (text, js) = anth_texts(&out);
    assert_eq!(text, "hi <US_SSN_a1");
    let parsed: Value = serde_json::from_str(&js).unwrap();
    assert_eq!(parsed["n"], common::PAIRS[2].1);
    assert_eq!(data(&out[4])["delta"]["text"], "<US_SSN_a1");
    assert_eq!(data(&out[5])["type"], "content_block_stop");
    assert_eq!(
        usage,
        Usage {
            input: Some(9),
            output: Some(42)
        }
    );
}

#[test]
fn anthropic_malformed_delta_is_an_error() {
    let mut s = StreamRestorer::new(WireFormat::AnthropicMessages, common::map());
    assert!(s
        .on_event(SseEvent::named("content_block_delta", "oops"))
        .is_err());
    // Without an index, a delta that could carry a placeholder cannot be restored: an error.
    assert!(s
        .on_event(SseEvent::named(
            "content_block_delta",
            r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"<PER"}}"#
        ))
        .is_err());
}

#[test]
fn events_without_a_bracket_leave_as_they_came() {
    // With nothing held and no `<` in any form, an event cannot touch a placeholder: it is
    // forwarded byte for byte, even when it breaks the format (that is the provider's to own).
    for format in [
        WireFormat::ChatCompletions,
        WireFormat::Responses,
        WireFormat::AnthropicMessages,
    ] {
        let mut s = StreamRestorer::new(format, common::map());
        for data in [
            r#"{"type":"content_block_delta","delta":{}}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"plain text"}}]}"#,
            r#"{"type":"response.output_text.delta","delta":"more", "sequence_number":7}"#,
        ] {
            let e = SseEvent::named("content_block_delta", data);
            assert_eq!(s.on_event(e.clone()).unwrap(), vec![e]);
        }
        // An escaped `<` takes the full path in every format: a placeholder written with
        // JSON's `\u003c` / `\u003e` escapes in the format's own text delta is restored, and
        // an index-less Anthropic delta is then an error.
        let (p, value) = common::PAIRS[0];
        let escaped_p = p.replace('<', "\\u003c").replace('>', "\\u003e");
        let (name, delta) = match format {
            WireFormat::ChatCompletions => (
                None,
                format!(r#"{{"choices":[{{"index":0,"delta":{{"content":"hi {escaped_p}"}}}}]}}"#),
            ),
            WireFormat::Responses => (
                Some("response.output_text.delta"),
                format!(
                    r#"{{"type":"response.output_text.delta","item_id":"m","output_index":0,"content_index":0,"delta":"hi {escaped_p}","sequence_number":8}}"#
                ),
            ),
            WireFormat::AnthropicMessages => (
                Some("content_block_delta"),
                format!(
                    r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"hi {escaped_p}"}}}}"#
                ),
            ),
        };
        let e = match name {
            Some(n) => SseEvent::named(n, delta),
            None => SseEvent::data(delta),
        };
        let out = s.on_event(e.clone()).unwrap();
        let sent: String = out.iter().map(|o| o.data.clone()).collect();
        assert!(
            sent.contains(value) && !sent.contains("u003c"),
            "{format:?}: the escaped placeholder was not restored: {sent}"
        );
        if format == WireFormat::AnthropicMessages {
            let escaped = r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"\u003cPER"}}"#;
            let e = SseEvent::named("content_block_delta", escaped);
            assert!(s.on_event(e).is_err());
        }
    }
}

// ---------- properties ----------

fn cuts() -> impl Strategy<Value = Vec<u16>> {
    prop::collection::vec(any::<u16>(), 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn chat_stream_equals_whole_text(
        (text, pieces) in common::chunked(), (args, arg_pieces) in common::chunked(),
        finish in any::<bool>(), done in any::<bool>(), wire in cuts(),
    ) {
        let events = over_the_wire(&chat_events(&pieces, &arg_pieces, finish, done), &wire);
        let (out, usage) = run(WireFormat::ChatCompletions, events);
        let out = over_the_wire(&out, &wire);
        let (content, got_args) = chat_texts(&out);
        prop_assert_eq!(content, restore_text(&text, &common::map(), TextMode::Plain));
        prop_assert_eq!(got_args, restore_text(&args, &common::map(), TextMode::JsonString));
        prop_assert_eq!(usage, Usage { input: Some(11), output: Some(22) });
    }

    #[test]
    fn responses_stream_equals_whole_text(
        (text, pieces) in common::chunked(), (args, arg_pieces) in common::chunked(),
        done in any::<bool>(), wire in cuts(),
    ) {
        let events = over_the_wire(&resp_events(&pieces, &arg_pieces, done), &wire);
        let (out, _) = run(WireFormat::Responses, events);
        let out = over_the_wire(&out, &wire);
        let (got, got_args) = resp_texts(&out, (&text, &args));
        prop_assert_eq!(got, restore_text(&text, &common::map(), TextMode::Plain));
        prop_assert_eq!(got_args, restore_text(&args, &common::map(), TextMode::JsonString));
    }

    #[test]
    fn anthropic_stream_equals_whole_text(
        (text, pieces) in common::chunked(), (js, js_pieces) in common::chunked(),
        stop in any::<bool>(), wire in cuts(),
    ) {
        let events = over_the_wire(&anth_events(&pieces, &js_pieces, stop), &wire);
        let (out, _) = run(WireFormat::AnthropicMessages, events);
        let out = over_the_wire(&out, &wire);
        let (got, got_js) = anth_texts(&out);
        prop_assert_eq!(got, restore_text(&text, &common::map(), TextMode::Plain));
        prop_assert_eq!(got_js, restore_text(&js, &common::map(), TextMode::JsonString));
    }

    #[test]
    fn empty_map_forwards_every_event_unchanged(
        (_, pieces) in common::chunked(), format in 0..3usize,
    ) {
        let (format, events) = match format {
            0 => (WireFormat::ChatCompletions, chat_events(&pieces, &pieces, true, true)),
            1 => (WireFormat::Responses, resp_events(&pieces, &pieces, true)),
            _ => (WireFormat::AnthropicMessages, anth_events(&pieces, &pieces, true)),
        };
        let mut s = StreamRestorer::new(format, std::sync::Arc::new(custos_llm::PlaceholderMap::default()));
        let mut out = Vec::new();
        for e in events.iter().cloned() {
            out.extend(s.on_event(e).unwrap());
            prop_assert_eq!(s.held(), 0);
        }
        out.extend(s.finish());
        prop_assert_eq!(out, events);
        prop_assert!(s.usage().input.is_some());
    }
}
