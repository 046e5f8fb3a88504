//! COMMAND: the command table as clients see it (COUNT, LIST, INFO, DOCS, GETKEYS).

use super::{lookup, CommandSpec, Ctx, Outcome, COMMANDS};
use crate::reply::{msg, Reply};

fn command_info(spec: &CommandSpec) -> Reply {
    Reply::Array(vec![
        Reply::bulk(spec.name),
        Reply::Int(i64::from(spec.arity)),
        Reply::Set(spec.flags.names().map(Reply::status).collect()),
        Reply::Int(i64::from(spec.first_key)),
        Reply::Int(i64::from(spec.last_key)),
        Reply::Int(i64::from(spec.step)),
        Reply::Set(vec![Reply::status(format!("@{}", spec.group))]),
        Reply::Set(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

/// Turns a syntax line like `key element [element ...]` into DOCS argument maps.
fn doc_arguments(syntax: &str) -> Reply {
    let mut args = Vec::new();
    let mut depth = 0;
    let mut token = String::new();
    let mut words = Vec::new();
    for c in syntax.chars() {
        match c {
            '[' => {
                depth += 1;
                token.push(c);
            }
            ']' => {
                depth -= 1;
                token.push(c);
            }
            ' ' if depth == 0 => {
                if !token.is_empty() {
                    words.push(std::mem::take(&mut token));
                }
            }
            _ => token.push(c),
        }
    }
    if !token.is_empty() {
        words.push(token);
    }
    for w in words {
        let optional = w.starts_with('[');
        let inner = w.trim_start_matches('[').trim_end_matches(']').to_string();
        let multiple = inner.ends_with("...");
        let name = inner
            .split_whitespace()
            .next()
            .unwrap_or("arg")
            .to_ascii_lowercase();
        let kind = if name == "key" || name == "source" || name == "destination" || name == "newkey" {
            "key"
        } else {
            "string"
        };
        let mut flags = Vec::new();
        if optional {
            flags.push(Reply::status("optional"));
        }
        if multiple {
            flags.push(Reply::status("multiple"));
        }
        args.push(Reply::Map(vec![
            (Reply::bulk("name"), Reply::bulk(&name)),
            (Reply::bulk("type"), Reply::bulk(kind)),
            (Reply::bulk("display_text"), Reply::bulk(&inner)),
            (Reply::bulk("flags"), Reply::Set(flags)),
        ]));
    }
    Reply::Array(args)
}

fn command_docs(spec: &CommandSpec) -> Reply {
    let mut fields = vec![
        (Reply::bulk("summary"), Reply::bulk(spec.summary)),
        (Reply::bulk("since"), Reply::bulk("1.0.0")),
        (Reply::bulk("group"), Reply::bulk(spec.group)),
    ];
    if !spec.syntax.is_empty() {
        fields.push((Reply::bulk("arguments"), doc_arguments(spec.syntax)));
    }
    Reply::Map(fields)
}

pub fn command(ctx: &mut Ctx) -> Outcome {
    let Some(sub) = ctx.args.get(1).map(|s| s.to_ascii_lowercase()) else {
        return Reply::Array(COMMANDS.iter().map(command_info).collect()).into();
    };
    let names = &ctx.args[2..];
    match sub.as_slice() {
        b"count" if names.is_empty() => Reply::Int(COMMANDS.len() as i64).into(),
        b"list" => Reply::Array(COMMANDS.iter().map(|c| Reply::bulk(c.name)).collect()).into(),
        b"info" => {
            if names.is_empty() {
                return Reply::Array(COMMANDS.iter().map(command_info).collect()).into();
            }
            Reply::Array(
                names
                    .iter()
                    .map(|n| lookup(n).map_or(Reply::NullArray, command_info))
                    .collect(),
            )
            .into()
        }
        b"docs" => {
            let specs: Vec<&CommandSpec> = if names.is_empty() {
                COMMANDS.iter().collect()
            } else {
                names.iter().filter_map(|n| lookup(n)).collect()
            };
            Reply::Map(
                specs
                    .into_iter()
                    .map(|s| (Reply::bulk(s.name), command_docs(s)))
                    .collect(),
            )
            .into()
        }
        b"getkeys" if !names.is_empty() => {
            let Some(spec) = lookup(&names[0]) else {
                return Reply::error(msg::INVALID_COMMAND).into();
            };
            if spec.first_key == 0 {
                return Reply::error(msg::NO_KEY_ARGUMENTS).into();
            }
            let last = if spec.last_key < 0 {
                names.len() as i32 + spec.last_key
            } else {
                spec.last_key
            };
            let keys = (spec.first_key..=last)
                .step_by(spec.step.max(1) as usize)
                .filter_map(|i| names.get(i as usize).cloned())
                .map(Reply::Bulk)
                .collect();
            Reply::Array(keys).into()
        }
        b"help" => Reply::Array(
            [
                "COMMAND <subcommand>",
                "COUNT",
                "DOCS [<command-name> ...]",
                "INFO [<command-name> ...]",
                "LIST",
                "GETKEYS <full-command>",
            ]
            .iter()
            .map(|s| Reply::status(*s))
            .collect(),
        )
        .into(),
        _ => Reply::error(msg::unknown_subcommand("command", &ctx.args[1])).into(),
    }
}
