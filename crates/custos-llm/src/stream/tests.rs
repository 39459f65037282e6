use super::*;

#[test]
fn empty_map_forwards_unchanged_and_reads_usage() {
    let mut s = StreamRestorer::new(
        WireFormat::ChatCompletions,
        Arc::new(PlaceholderMap::default()),
    );
    let e =
        SseEvent::data("{\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}");
    assert_eq!(s.on_event(e.clone()).unwrap(), vec![e]);
    assert_eq!(
        s.usage(),
        Usage {
            input: Some(5),
            output: Some(2)
        }
    );
}

fn map() -> PlaceholderMap {
    let mut m = PlaceholderMap::default();
    m.insert("<PERSON_0123456789ab>".into(), "Ada \"A\" L".into());
    m
}

#[test]
fn whole_restore_reaches_nested_strings_and_escaped_brackets() {
    let e = SseEvent::named(
        "message_start",
        r#"{"message":{"content":[{"text":"hi \u003cPERSON_0123456789ab>"}],"arguments":"{\"n\":\"<PERSON_0123456789ab>\"}"}}"#,
    );
    let out = restore_whole(e, &map());
    let v: Value = serde_json::from_str(&out.data).unwrap();
    assert_eq!(v["message"]["content"][0]["text"], "hi Ada \"A\" L");
    let args: Value = serde_json::from_str(v["message"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["n"], "Ada \"A\" L");
    assert_eq!(out.event.as_deref(), Some("message_start"));
}

#[test]
fn whole_restore_leaves_unchanged_events_as_they_came() {
    for data in [
        r#"{"z":1, "a":"<b>"}"#,
        "plain <PERSON_0123456789a",
        "{\"x\":2}",
    ] {
        let e = SseEvent::named("x", data);
        assert_eq!(restore_whole(e.clone(), &map()), e);
    }
}

#[test]
fn malformed_delta_error_names_only_the_event_type() {
    let mut s = StreamRestorer::new(WireFormat::Responses, Arc::new(map()));
    let long = "response.output_text.delta".repeat(10);
    let err = s
        .on_event(SseEvent::named(long, "Ada Lovelace said"))
        .unwrap_err();
    let StreamError::MalformedDelta(name) = &err;
    assert_eq!(name.chars().count(), 64);
    assert!(!err.to_string().contains("Ada"));
}
