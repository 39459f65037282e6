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
