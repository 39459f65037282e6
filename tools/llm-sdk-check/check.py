#!/usr/bin/env python3
"""The official OpenAI and Anthropic SDKs against Custos's LLM gateway (or the stand-in provider).

    check.py            three-turn conversations with PII, every API, plain and streamed
    check.py errors     the error cases in LLM_ERROR_CASES raise the SDK's own exception classes

Environment:
    LLM_OPENAI_BASE       OpenAI SDK base URL (e.g. http://127.0.0.1:P/llm/openai/v1)
    LLM_ANTHROPIC_BASE    Anthropic SDK base URL (e.g. http://127.0.0.1:P/llm/anthropic)
    LLM_KEY               the key both SDKs send
    LLM_MODEL_OPENAI      model for the OpenAI APIs (default stand-in)
    LLM_MODEL_ANTHROPIC   model for the Anthropic API (default stand-in)
    LLM_STANDIN           the stand-in provider's base URL, for its /_stand-in/ control routes
    LLM_EXPECT_PLACEHOLDERS  1 (default): the provider must see placeholders, never a PII value;
                          0: nothing replaces PII (the SDKs talk to the stand-in directly)
    LLM_ERROR_CASES       for `errors`: a JSON list of {"sdk", "api", "model", "body_extra",
                          "expect_status", "expect_class"}

The replies must be what the stand-in's reply logic predicts, with the ORIGINAL values in them
(the gateway restores placeholders), in text and in tool-call arguments, plain and streamed.
Failure messages name the scenario and never print a PII value: values show as their kind.
"""

import json
import os
import re
import sys
import urllib.request

import anthropic
import openai

# Values the gateway's detector recognizes (custos-pii): an e-mail address, a phone number, a
# person's name and a US SSN (valid by the SSA rules, with "SSN" as context).
PII = {
    "EMAIL_ADDRESS": "maria.gonzalez@example.com",
    "PHONE_NUMBER": "(415) 555-2671",
    "PERSON": "Maria Gonzalez",
    "US_SSN": "536-90-4399",
}
SYSTEM = "You are a helpful assistant for the customer support team."
TURN1 = (
    "Please save this contact: Maria Gonzalez, email maria.gonzalez@example.com, "
    "phone (415) 555-2671, SSN 536-90-4399."
)
TOOL_RESULT = "Saved contact Maria Gonzalez with email maria.gonzalez@example.com and SSN 536-90-4399."
TURN3 = "Thanks. Please also send a copy to maria.gonzalez@example.com today."
PLACEHOLDER = re.compile(r"<[A-Z_]+_[0-9a-f]{12}>")
TOOL_NAME = "save_contact"
TOOL_PARAMS = {
    "type": "object",
    "properties": {"text": {"type": "string", "description": "the contact details"}},
    "required": ["text"],
}


class CheckFailed(Exception):
    """A scenario's expectation did not hold."""


def redact(text):
    """The text with every PII value replaced by its kind, so failures can be printed."""
    for kind, value in PII.items():
        text = text.replace(value, f"[{kind}]")
    return text


def expect(cond, what):
    if not cond:
        raise CheckFailed(what)


def expect_eq(got, want, what):
    if got != want:
        raise CheckFailed(f"{what}: got {got!r}, want {want!r}")


def env(name, default=None):
    value = os.environ.get(name, default)
    if value is None:
        sys.exit(f"llm-sdk-check: {name} is not set")
    return value


def expected_args():
    return {"text": TURN1}


def reply_to(text):
    return "You said: " + text


# --- the stand-in's record --------------------------------------------------------------------


def standin(method, path):
    req = urllib.request.Request(env("LLM_STANDIN").rstrip("/") + path, method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def check_recorded(api_path, expect_placeholders):
    """What the provider received in this conversation: three requests, and no PII value in
    them (with placeholders), each value as the same placeholder in every turn."""
    recorded = [r for r in standin("GET", "/_stand-in/requests") if r["path"].endswith(api_path)]
    expect_eq(len(recorded), 3, f"requests the provider received on {api_path}")
    bodies = [r["body"] for r in recorded]
    if not expect_placeholders:
        expect(all(TURN1 in b for b in bodies), "the provider did not receive the original turn-1 text")
        return None
    for turn, body in enumerate(bodies, 1):
        for kind, value in PII.items():
            expect(value not in body, f"turn {turn}: the provider received an original {kind} value")
    mapping = placeholders_of_turn1(bodies[0])
    for kind, placeholder in mapping.items():
        expect(
            placeholder[1:].startswith(kind + "_"),
            f"the {kind} value became {placeholder}, a placeholder of another kind",
        )
    want = set(mapping.values())
    for turn, body in enumerate(bodies, 1):
        seen = set(PLACEHOLDER.findall(body))
        expect_eq(sorted(seen), sorted(want), f"turn {turn}: placeholders the provider received")
    return mapping


def placeholders_of_turn1(body):
    """Which placeholder each value became, by lining the turn-1 text up with the recorded body."""
    kind_of = {value: kind for kind, value in PII.items()}
    values = re.compile("|".join(re.escape(v) for v in sorted(kind_of, key=len, reverse=True)))
    pattern, order, pos = "", [], 0
    for m in values.finditer(TURN1):
        pattern += re.escape(TURN1[pos : m.start()]) + "(<[A-Z_]+_[0-9a-f]{12}>)"
        order.append(kind_of[m.group(0)])
        pos = m.end()
    pattern += re.escape(TURN1[pos:])
    found = re.search(pattern, body)
    expect(found is not None, "turn 1: the user message did not reach the provider as text with placeholders")
    mapping = {}
    for kind, placeholder in zip(order, found.groups()):
        expect(mapping.get(kind, placeholder) == placeholder, f"turn 1: the {kind} value became two placeholders")
        mapping[kind] = placeholder
    for kind in PII:
        expect(kind in mapping, f"turn 1: no placeholder for the {kind} value")
    return mapping


# --- OpenAI Chat Completions ------------------------------------------------------------------


def chat_tools():
    return [{"type": "function", "function": {"name": TOOL_NAME, "description": "Save a contact", "parameters": TOOL_PARAMS}}]


def chat_turn(client, mode, **kw):
    """One Chat Completions call; returns (text, tool_calls as [(id, name, arguments)])."""
    if mode == "plain":
        r = client.chat.completions.create(**kw)
        msg = r.choices[0].message
        expect(r.usage is not None and r.usage.completion_tokens > 0, "chat: no usage")
        calls = [(c.id, c.function.name, c.function.arguments) for c in msg.tool_calls or []]
        return msg.content, calls
    if mode == "stream":
        text, calls, usage, finish = "", {}, None, None
        for chunk in client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw):
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                text += choice.delta.content or ""
                for tc in choice.delta.tool_calls or []:
                    slot = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                    slot["id"] = tc.id or slot["id"]
                    if tc.function is not None:
                        slot["name"] += tc.function.name or ""
                        slot["arguments"] += tc.function.arguments or ""
        expect(usage is not None and usage.completion_tokens > 0, "chat stream: no usage chunk")
        expect(finish in ("stop", "tool_calls"), f"chat stream: finish_reason {finish!r}")
        return (text if not calls else None), [(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())]
    # The SDK's helper: events, then the accumulated completion.
    streamed = ""
    with client.chat.completions.stream(**kw) as stream:
        for event in stream:
            if event.type == "content.delta":
                streamed += event.delta
        final = stream.get_final_completion()
    msg = final.choices[0].message
    expect_eq(streamed, msg.content or "", "chat helper: content deltas vs the final completion")
    return msg.content, [(c.id, c.function.name, c.function.arguments) for c in msg.tool_calls or []]


def run_chat(client, model, mode):
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": TURN1}]
    text, calls = chat_turn(client, mode, model=model, messages=messages, tools=chat_tools())
    expect_eq(len(calls), 1, "turn 1: tool calls")
    call_id, name, arguments = calls[0]
    expect_eq(name, TOOL_NAME, "turn 1: tool name")
    expect_eq(redact(json.dumps(json.loads(arguments))), redact(json.dumps(expected_args())), "turn 1: tool arguments")
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}],
        }
    )
    messages.append({"role": "tool", "tool_call_id": call_id, "content": TOOL_RESULT})
    text, calls = chat_turn(client, mode, model=model, messages=messages, tools=chat_tools())
    expect_eq(calls, [], "turn 2: tool calls")
    expect_eq(redact(text), redact(reply_to(TOOL_RESULT)), "turn 2: reply")
    messages += [{"role": "assistant", "content": text}, {"role": "user", "content": TURN3}]
    text, calls = chat_turn(client, mode, model=model, messages=messages, tools=chat_tools(), tool_choice="none")
    expect_eq(calls, [], "turn 3: tool calls")
    expect_eq(redact(text), redact(reply_to(TURN3)), "turn 3: reply")


# --- OpenAI Responses -------------------------------------------------------------------------


def responses_tools():
    return [{"type": "function", "name": TOOL_NAME, "description": "Save a contact", "parameters": TOOL_PARAMS, "strict": False}]


def responses_result(response):
    """(text, [(call_id, name, arguments)]) of a Response object."""
    calls = [(o.call_id, o.name, o.arguments) for o in response.output if o.type == "function_call"]
    expect_eq(response.instructions, SYSTEM, "responses: instructions echoed")
    expect(response.usage is not None and response.usage.output_tokens > 0, "responses: no usage")
    return (response.output_text if not calls else None), calls


def responses_turn(client, mode, **kw):
    if mode == "plain":
        return responses_result(client.responses.create(**kw))
    text, arguments, completed = "", "", None
    if mode == "stream":
        for event in client.responses.create(stream=True, **kw):
            if event.type == "response.output_text.delta":
                text += event.delta
            elif event.type == "response.function_call_arguments.delta":
                arguments += event.delta
            elif event.type == "response.completed":
                completed = event.response
        expect(completed is not None, "responses stream: no response.completed")
    else:
        with client.responses.stream(**kw) as stream:
            for event in stream:
                if event.type == "response.output_text.delta":
                    text += event.delta
                elif event.type == "response.function_call_arguments.delta":
                    arguments += event.delta
            completed = stream.get_final_response()
    final_text, calls = responses_result(completed)
    if calls:
        expect_eq(redact(arguments), redact(calls[0][2]), "responses stream: argument deltas vs the final response")
    else:
        expect_eq(redact(text), redact(final_text), "responses stream: text deltas vs the final response")
    return final_text, calls


def run_responses(client, model, mode):
    items = [{"role": "user", "content": TURN1}]
    common = {"model": model, "instructions": SYSTEM, "tools": responses_tools()}
    text, calls = responses_turn(client, mode, input=items, **common)
    expect_eq(len(calls), 1, "turn 1: function calls")
    call_id, name, arguments = calls[0]
    expect_eq(name, TOOL_NAME, "turn 1: function name")
    expect_eq(redact(json.dumps(json.loads(arguments))), redact(json.dumps(expected_args())), "turn 1: function arguments")
    items += [
        {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments},
        {"type": "function_call_output", "call_id": call_id, "output": TOOL_RESULT},
    ]
    text, calls = responses_turn(client, mode, input=items, **common)
    expect_eq(calls, [], "turn 2: function calls")
    expect_eq(redact(text), redact(reply_to(TOOL_RESULT)), "turn 2: reply")
    items += [{"role": "assistant", "content": text}, {"role": "user", "content": TURN3}]
    text, calls = responses_turn(client, mode, input=items, tool_choice="none", **common)
    expect_eq(calls, [], "turn 3: function calls")
    expect_eq(redact(text), redact(reply_to(TURN3)), "turn 3: reply")


# --- Anthropic Messages -----------------------------------------------------------------------


def messages_tools():
    return [{"name": TOOL_NAME, "description": "Save a contact", "input_schema": TOOL_PARAMS}]


def message_result(message):
    """(text, [(id, name, input)]) of a Message."""
    calls = [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
    text = "".join(b.text for b in message.content if b.type == "text")
    expect_eq(message.stop_reason, "tool_use" if calls else "end_turn", "messages: stop_reason")
    expect(message.usage.output_tokens > 0, "messages: no usage")
    return (text if not calls else None), calls


def messages_turn(client, mode, **kw):
    if mode == "plain":
        return message_result(client.messages.create(**kw))
    if mode == "stream":
        text, partial_json, start, stop_reason, blocks = "", "", None, None, []
        for event in client.messages.create(stream=True, **kw):
            if event.type == "content_block_start":
                blocks.append(event.content_block)
            elif event.type == "content_block_delta":
                if event.delta.type == "text_delta":
                    text += event.delta.text
                elif event.delta.type == "input_json_delta":
                    partial_json += event.delta.partial_json
            elif event.type == "message_start":
                start = event.message
            elif event.type == "message_delta":
                stop_reason = event.delta.stop_reason
        expect(start is not None and len(blocks) == 1, "messages stream: message_start and one content block")
        if blocks[0].type == "tool_use":
            expect_eq(stop_reason, "tool_use", "messages stream: stop_reason")
            return None, [(blocks[0].id, blocks[0].name, json.loads(partial_json))]
        expect_eq(stop_reason, "end_turn", "messages stream: stop_reason")
        return text, []
    with client.messages.stream(**kw) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    text, calls = message_result(final)
    if not calls:
        expect_eq(redact(streamed), redact(text), "messages helper: text_stream vs the final message")
    return text, calls


def run_messages(client, model, mode):
    messages = [{"role": "user", "content": TURN1}]
    common = {"model": model, "max_tokens": 512, "system": SYSTEM, "tools": messages_tools()}
    text, calls = messages_turn(client, mode, messages=messages, **common)
    expect_eq(len(calls), 1, "turn 1: tool_use blocks")
    tool_id, name, tool_input = calls[0]
    expect_eq(name, TOOL_NAME, "turn 1: tool name")
    expect_eq(redact(json.dumps(tool_input)), redact(json.dumps(expected_args())), "turn 1: tool input")
    messages += [
        {"role": "assistant", "content": [{"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": TOOL_RESULT}]},
    ]
    text, calls = messages_turn(client, mode, messages=messages, **common)
    expect_eq(calls, [], "turn 2: tool_use blocks")
    expect_eq(redact(text), redact(reply_to(TOOL_RESULT)), "turn 2: reply")
    messages += [{"role": "assistant", "content": text}, {"role": "user", "content": TURN3}]
    text, calls = messages_turn(client, mode, messages=messages, tool_choice={"type": "none"}, **common)
    expect_eq(calls, [], "turn 3: tool_use blocks")
    expect_eq(redact(text), redact(reply_to(TURN3)), "turn 3: reply")


# --- driver -----------------------------------------------------------------------------------


def clients():
    key = env("LLM_KEY", "test-key")
    oa = openai.OpenAI(base_url=env("LLM_OPENAI_BASE"), api_key=key, max_retries=0, timeout=30)
    an = anthropic.Anthropic(base_url=env("LLM_ANTHROPIC_BASE"), api_key=key, max_retries=0, timeout=30)
    return oa, an


def conversations():
    oa, an = clients()
    model_oa = env("LLM_MODEL_OPENAI", "stand-in")
    model_an = env("LLM_MODEL_ANTHROPIC", "stand-in")
    placeholders = env("LLM_EXPECT_PLACEHOLDERS", "1") != "0"
    apis = [
        ("chat", "/v1/chat/completions", lambda mode: run_chat(oa, model_oa, mode)),
        ("responses", "/v1/responses", lambda mode: run_responses(oa, model_oa, mode)),
        ("messages", "/v1/messages", lambda mode: run_messages(an, model_an, mode)),
    ]
    for api, path, run in apis:
        for mode in ("plain", "stream", "helper"):
            scenario = f"{api}/{mode}"

            def conversation(run=run, mode=mode, path=path):
                standin("DELETE", "/_stand-in/requests")
                run(mode)
                return check_recorded(path, placeholders)

            mapping = guarded(scenario, conversation)
            what = ", ".join(f"{k}->{v}" for k, v in sorted(mapping.items())) if mapping else "originals reach the provider"
            print(f"llm-sdk-check: ok {scenario}: 3 turns; {what}")
    guarded("models", lambda: models(oa, an))


def guarded(scenario, run):
    """Runs one scenario; any failure ends the check with a message naming it."""
    try:
        return run()
    except CheckFailed as e:
        fail(scenario, str(e))
    except (openai.APIError, anthropic.APIError) as e:
        fail(scenario, f"the SDK raised {type(e).__name__} (status {getattr(e, 'status_code', None)})")
    except Exception as e:  # noqa: BLE001 - a broken stream or reply is a failure of the scenario too
        fail(scenario, f"{type(e).__name__}: {e}")


def models(oa, an):
    ids = [m.id for m in oa.models.list()]
    expect(len(ids) > 0, "the OpenAI model list is empty")
    print(f"llm-sdk-check: ok models/openai: {len(ids)} models")
    ids = [m.id for m in an.models.list()]
    expect(len(ids) > 0, "the Anthropic model list is empty")
    print(f"llm-sdk-check: ok models/anthropic: {len(ids)} models")


def error_call(oa, an, case):
    extra = dict(case.get("body_extra") or {})
    stream = bool(extra.pop("stream", False))
    model = case["model"]
    api = case["api"]
    if case["sdk"] == "openai" and api == "chat":
        kw = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
        call = oa.chat.completions.create
    elif case["sdk"] == "openai" and api == "responses":
        kw = {"model": model, "input": "hello"}
        call = oa.responses.create
    elif case["sdk"] == "anthropic" and api == "messages":
        kw = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "hello"}]}
        call = an.messages.create
    else:
        raise CheckFailed(f"unknown sdk/api {case['sdk']}/{api}")
    if stream:
        kw["stream"] = True
    result = call(extra_body=extra or None, **kw)
    if stream:
        for _ in result:
            pass


def errors():
    oa, an = clients()
    cases = json.loads(env("LLM_ERROR_CASES"))
    for i, case in enumerate(cases):
        scenario = f"error case {i} {case['sdk']}/{case['api']} -> {case['expect_status']} {case['expect_class']}"
        try:
            error_call(oa, an, case)
        except (openai.APIError, anthropic.APIError) as e:
            got = (type(e).__name__, getattr(e, "status_code", None))
            want = (case["expect_class"], case["expect_status"])
            if got != want:
                fail(scenario, f"the SDK raised {got[0]} (status {got[1]})")
            print(f"llm-sdk-check: ok {scenario}")
            continue
        except Exception as e:  # noqa: BLE001
            fail(scenario, f"{type(e).__name__}: {e}")
        fail(scenario, "the call succeeded")


def fail(scenario, message):
    print(f"llm-sdk-check: FAIL {scenario}: {redact(message)}", file=sys.stderr)
    sys.exit(1)


def main(argv):
    if argv[1:] == ["errors"]:
        errors()
    elif argv[1:] == []:
        conversations()
    else:
        sys.exit(f"usage: {argv[0]} [errors]")
    print("llm-sdk-check: all checks passed")


if __name__ == "__main__":
    main(sys.argv)
