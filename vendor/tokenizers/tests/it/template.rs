//! Chat templates written inline: ChatML, Llama 3, a Mistral-style template
//! that refuses bad roles, and the HF extras (tojson, pycompat, namespace, ...).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;
use tektra_tokenizers::{ChatTemplate, Error, Message};

const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// Llama 3.1-style: BOS, a dated system header, trimmed contents.
const LLAMA3: &str = r#"{{- bos_token }}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{{- "Today Date: " + strftime_now("%d %b %Y") + "\n\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}"#;

/// Mistral-style: roles must alternate user/assistant, else raise_exception.
const MISTRAL: &str = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

#[test]
fn chatml_two_turns() {
    let template = ChatTemplate::new(CHATML).unwrap();
    let messages = [
        Message::user("Hello"),
        Message::assistant("Hi! How can I help?"),
    ];
    assert_eq!(
        template.render(&messages, true).unwrap(),
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi! How can I help?<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        template.render(&messages[..1], false).unwrap(),
        "<|im_start|>user\nHello<|im_end|>\n"
    );
}

#[test]
fn llama3_with_bos_date_and_trimmed_content() {
    let template = ChatTemplate::new(LLAMA3)
        .unwrap()
        .with_token("bos_token", "<|begin_of_text|>")
        .with_fixed_time(1_721_865_600); // 2024-07-25
    let messages = [
        Message::system("  Be brief.  "),
        Message::user("What is Rust?\n"),
        Message::assistant("A language."),
    ];
    assert_eq!(
        template.render(&messages, true).unwrap(),
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n\
         Today Date: 25 Jul 2024\n\nBe brief.<|eot_id|>\
         <|start_header_id|>user<|end_header_id|>\n\nWhat is Rust?<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\nA language.<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n"
    );
}

#[test]
fn mistral_style_template_refuses_bad_roles_with_a_typed_error() {
    let template = ChatTemplate::named("mistral", MISTRAL)
        .unwrap()
        .with_token("bos_token", "<s>")
        .with_token("eos_token", "</s>");
    let ok = template
        .render(
            &[
                Message::user("Hi"),
                Message::assistant("Hello"),
                Message::user("Bye"),
            ],
            false,
        )
        .unwrap();
    assert_eq!(ok, "<s>[INST] Hi [/INST]Hello</s>[INST] Bye [/INST]");

    let err = template
        .render(&[Message::user("Hi"), Message::user("Again")], false)
        .unwrap_err();
    match err {
        Error::TemplateRaised { name, message } => {
            assert_eq!(name, "mistral");
            assert_eq!(
                message,
                "Conversation roles must alternate user/assistant/user/assistant/..."
            );
        }
        other => panic!("expected TemplateRaised, got {other:?}"),
    }
    let err = template
        .render(&[Message::system("sys")], false)
        .unwrap_err();
    assert!(matches!(err, Error::TemplateRaised { .. }), "{err}");
    // A template bug is a render error, not a refusal.
    let broken = ChatTemplate::new("{{ messages[0].content + 1 }}").unwrap();
    let err = broken.render(&[Message::user("x")], false).unwrap_err();
    assert!(matches!(err, Error::TemplateRender { .. }), "{err}");
}

#[test]
fn tojson_writes_python_json() {
    let template = ChatTemplate::new("{{ tools | tojson }}|{{ tools[0].parameters | tojson(indent=2) }}|{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}").unwrap();
    // Structs keep field order (serde_json's json! would sort the keys).
    #[derive(Serialize)]
    struct Parameters {
        x: i32,
        y: (f64, bool, Option<i32>, f64),
        z: BTreeMap<String, i32>,
    }
    #[derive(Serialize)]
    struct Tool {
        name: &'static str,
        description: &'static str,
        parameters: Parameters,
    }
    let tools = [Tool {
        name: "get_weather",
        description: "<b>Temp</b> & 'more' in Zürich\n",
        parameters: Parameters {
            x: 1,
            y: (1.5, true, None, 2.0),
            z: BTreeMap::new(),
        },
    }];
    let rendered = template
        .render_with(
            &[Message::user("x")],
            false,
            &BTreeMap::from([("tools", &tools)]),
        )
        .unwrap();
    assert_eq!(
        rendered,
        "[{\"name\": \"get_weather\", \"description\": \"<b>Temp</b> & 'more' in Zürich\\n\", \"parameters\": {\"x\": 1, \"y\": [1.5, true, null, 2.0], \"z\": {}}}]\
         |{\n  \"x\": 1,\n  \"y\": [\n    1.5,\n    true,\n    null,\n    2.0\n  ],\n  \"z\": {}\n}\
         |{\"a\": 2, \"b\": 1}"
    );
}

#[test]
fn python_methods_namespace_loop_controls_and_whitespace_control() {
    let source = "{% set ns = namespace(found=false) %}
{% for message in messages %}
    {% if message.content.strip().startswith('/') %}
        {% set ns.found = true %}
        {% break %}
    {% endif %}
{% endfor %}
found={{ ns.found }}
{% for message in messages %}
    {{ message.role.upper() }}:{{ message.content.split()|join('_') }}{% if not loop.last %},{% endif %}
{% endfor %}
{% for k, v in {'a': 1}.items() %}{{ k }}={{ v }}{% endfor %}";
    let template = ChatTemplate::new(source).unwrap();
    let rendered = template
        .render(
            &[
                Message::user("hello big world"),
                Message::assistant("  /cmd "),
            ],
            false,
        )
        .unwrap();
    // Exactly what Python's Jinja2 3.1.6 gives with HF's settings (checked):
    // trim_blocks eats the newline after a block tag, lstrip_blocks the
    // indentation before one, and booleans print as Python's True.
    assert_eq!(
        rendered,
        "found=True\n    USER:hello_big_world,    ASSISTANT:/cmda=1"
    );
}

#[test]
fn generation_markers_are_accepted() {
    let template = ChatTemplate::new(
        "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}",
    )
    .unwrap();
    assert_eq!(
        template
            .render(&[Message::user("a"), Message::assistant("b")], false)
            .unwrap(),
        "ab"
    );
}

#[test]
fn tokenizer_config_forms() {
    // Plain string template with AddedToken-object special tokens.
    let config = json!({
        "chat_template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}",
        "bos_token": {"content": "<s>", "lstrip": false},
        "eos_token": "</s>",
    })
    .to_string();
    let template = ChatTemplate::from_tokenizer_config(&config).unwrap();
    assert_eq!(
        template.render(&[Message::user("hi")], false).unwrap(),
        "<s>hi</s>"
    );

    // A list of named templates.
    let config = json!({
        "chat_template": [
            {"name": "default", "template": "D{{ messages|length }}"},
            {"name": "tool_use", "template": "T{{ tools|length }}"},
        ]
    })
    .to_string();
    let default = ChatTemplate::from_tokenizer_config(&config).unwrap();
    assert_eq!(default.render(&[Message::user("x")], true).unwrap(), "D1");
    let tool_use = ChatTemplate::from_tokenizer_config_named(&config, "tool_use").unwrap();
    assert_eq!(tool_use.name(), "tool_use");
    assert_eq!(
        tool_use
            .render_with(&[Message::user("x")], true, &json!({"tools": [1, 2]}))
            .unwrap(),
        "T2"
    );
    assert!(matches!(
        ChatTemplate::from_tokenizer_config_named(&config, "rag"),
        Err(Error::NoChatTemplate { name: Some(n) }) if n == "rag"
    ));
}

#[test]
fn tokenizer_config_errors_are_typed() {
    assert!(matches!(
        ChatTemplate::from_tokenizer_config("{}"),
        Err(Error::NoChatTemplate { name: None })
    ));
    assert!(matches!(
        ChatTemplate::from_tokenizer_config("{not json"),
        Err(Error::Json { .. })
    ));
    let err = ChatTemplate::from_tokenizer_config(r#"{"chat_template": 42}"#).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ConfigField {
                field: "chat_template",
                ..
            }
        ),
        "{err}"
    );
    let err = ChatTemplate::from_tokenizer_config(r#"{"chat_template": "x", "bos_token": 7}"#)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ConfigField {
                field: "bos_token",
                ..
            }
        ),
        "{err}"
    );
    let err = ChatTemplate::from_tokenizer_config(r#"{"chat_template": "{% if %}"}"#).unwrap_err();
    assert!(matches!(err, Error::TemplateSyntax { .. }), "{err}");
    // Extra context must be a map.
    let template = ChatTemplate::new(CHATML).unwrap();
    let err = template
        .render_with(&[Message::user("x")], false, &[1, 2])
        .unwrap_err();
    assert!(matches!(err, Error::TemplateContext { .. }), "{err}");
}

#[test]
fn extra_context_overrides_token_variables() {
    let template = ChatTemplate::new("{{ bos_token }}|{{ custom }}")
        .unwrap()
        .with_token("bos_token", "<s>");
    assert_eq!(template.render(&[], false).unwrap(), "<s>|");
    assert_eq!(
        template
            .render_with(
                &[] as &[Message],
                false,
                &json!({"bos_token": "", "custom": "yes"})
            )
            .unwrap(),
        "|yes"
    );
}

/// A template from a model file is untrusted: one that loops without end
/// runs out of fuel and is an error, quickly, not a hang.
#[test]
fn a_runaway_template_is_stopped_by_its_fuel() {
    let hostile = ChatTemplate::new(
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = hostile.render(&[Message::user("x")], false).unwrap_err();
    println!("stopped after {:?}: {err}", started.elapsed());
    assert!(matches!(err, Error::TemplateRender { .. }), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("fuel") || format!("{err:?}").contains("OutOfFuel"),
        "{err:?}"
    );
    // Normal templates over a long conversation stay well inside it.
    let chatml = ChatTemplate::new(CHATML).unwrap();
    let long: Vec<Message> = (0..500)
        .map(|i| Message::user(format!("message {i}")))
        .collect();
    assert!(chatml.render(&long, true).is_ok());
}
