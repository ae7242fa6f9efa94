//! One turn of a stored chat session: the session's messages become an engine request, and the
//! reply (whole, interrupted or failed) is stored back. Shared by the CLI's `deskmate chat` and
//! the app's chat page so both keep history the same way.
//!
//! Storage: the user's message is saved before the model is asked, so nothing typed is lost
//! whatever happens next; the reply is saved with status `complete`, or `interrupted` (cancelled
//! or failed, with the text so far).

use crate::engine::{ChatMessage, ChatRequest};
use crate::error::{Error, Result};
use crate::store::{Message, MessageStatus, Persona, Role, SessionSetup, Tone};

/// Longest automatic title taken from the first message, in characters.
const TITLE_CHARS: usize = 60;

/// What the model is told about itself, per persona.
pub fn system_prompt(persona: Persona) -> &'static str {
    match persona {
        Persona::Office => {
            "You are Deskmate, a careful office assistant running entirely on the user's computer. \
             Answer in the language the user writes in (Korean or English). Be accurate and concise; \
             say so when you do not know."
        }
        Persona::Character => {
            "You are Deskmate's friendly companion character. Stay warm and in character, answer in \
             the language the user writes in, and keep replies short."
        }
    }
}

/// Where the system prompts say the model runs.
const ON_THIS_COMPUTER: &str = "running entirely on the user's computer";

/// A system prompt for a persona whose model runs on a server: it must not claim to run on the
/// user's computer (a model repeats such claims to the user).
pub fn on_server(prompt: &str) -> String {
    prompt.replace(
        ON_THIS_COMPUTER,
        "running on a server of the user's organisation",
    )
}

/// The system prompt of a session: the persona's, with the office tone or the character sheet.
/// A character's greeting is part of it, because the stored greeting (the session's first
/// message) is left out of the turns: chat templates such as Gemma's refuse a conversation that
/// opens with the assistant.
pub fn system_prompt_for(setup: &SessionSetup) -> String {
    match (setup.persona, &setup.character) {
        (Persona::Character, Some(c)) if !c.name.trim().is_empty() => {
            let mut prompt = format!(
                "You are {name}, a character the user chats with in Deskmate, running entirely on \
                 the user's computer. Stay in character as {name}: warm, natural, and brief. Answer \
                 in the language the user writes in (Korean or English).",
                name = c.name.trim()
            );
            if !c.context.trim().is_empty() {
                prompt.push_str(&format!(
                    "\n\nAbout {}: {}",
                    c.name.trim(),
                    c.context.trim()
                ));
            }
            if !c.greeting.trim().is_empty() {
                prompt.push_str(&format!(
                    "\n\nYou opened the conversation by saying: {}",
                    c.greeting.trim()
                ));
            }
            prompt
        }
        (Persona::Office, _) => {
            let register = match setup.tone.unwrap_or(Tone::Polite) {
                Tone::Polite => {
                    "Use a polite, formal register (in Korean, honorific 합쇼체 or polite 해요체)."
                }
                Tone::Friendly => {
                    "Use a warm, friendly and relaxed register (in Korean, friendly 해요체), \
                     still professional."
                }
            };
            format!("{} {register}", system_prompt(Persona::Office))
        }
        (persona, _) => system_prompt(persona).to_owned(),
    }
}

/// The request for the next reply: the session's system prompt, the stored history (at most
/// `max_history_turns` user turns with their replies; `None` for all) and the new message.
pub fn request_for(
    setup: &SessionSetup,
    history: &[Message],
    user_text: &str,
    max_history_turns: Option<usize>,
) -> ChatRequest {
    request_with_vision(setup, history, user_text, max_history_turns, false)
}

/// [`request_for`] for a model that does (`vision`) or does not see images: it changes what the
/// notes about earlier images say.
pub fn request_with_vision(
    setup: &SessionSetup,
    history: &[Message],
    user_text: &str,
    max_history_turns: Option<usize>,
    vision: bool,
) -> ChatRequest {
    let mut past: Vec<&Message> = history
        .iter()
        .filter(|m| m.role != Role::System && !m.content.is_empty())
        .skip_while(|m| m.role == Role::Assistant)
        .collect();
    if let Some(limit) = max_history_turns {
        let user_turns: Vec<usize> = past
            .iter()
            .enumerate()
            .filter(|(_, m)| m.role == Role::User)
            .map(|(i, _)| i)
            .collect();
        if user_turns.len() > limit {
            let first_kept = if limit == 0 {
                past.len()
            } else {
                user_turns[user_turns.len() - limit]
            };
            past.drain(..first_kept);
        }
    }
    let mut messages = vec![ChatMessage::new(Role::System, system_prompt_for(setup))];
    messages.extend(
        past.into_iter()
            .map(|m| ChatMessage::new(m.role, prompt_text(m, vision))),
    );
    messages.push(ChatMessage::new(Role::User, user_text));
    ChatRequest {
        messages,
        sampling: None,
        ignore_eos: false,
        local_only: false,
    }
}

/// A stored message as the model reads it. Images are sent to a vision model only with the
/// message they came with; otherwise they become a note, so that a model that cannot see says
/// so instead of inventing what they show, and a vision model knows an earlier image is gone.
/// For a model that cannot see, the text OCR read in an image (when it found some) goes with the
/// note, marked as read by OCR.
pub fn prompt_text(message: &Message, vision: bool) -> String {
    let images: Vec<&crate::store::Attachment> = message
        .attachments
        .iter()
        .filter(|a| a.kind == "image")
        .collect();
    if images.is_empty() {
        return message.content.clone();
    }
    let names = |images: &[&crate::store::Attachment]| {
        images
            .iter()
            .map(|a| a.file_name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let what = |n: usize| if n == 1 { "an image" } else { "images" };
    if vision {
        return format!(
            "{}\n\n[The user attached {} ({}) to this message; it is not shown again.]",
            message.content,
            what(images.len()),
            names(&images)
        );
    }
    let (read, unread): (
        Vec<&crate::store::Attachment>,
        Vec<&crate::store::Attachment>,
    ) = images
        .into_iter()
        .partition(|a| a.text.as_deref().is_some_and(|t| !t.trim().is_empty()));
    let mut out = message.content.clone();
    for image in &read {
        out.push_str(&format!(
            "\n\n[The user attached an image ({}). You cannot see images, but the text in it was read by OCR (it may contain recognition errors):\n{}\n[End of the text read from {}.]]",
            image.file_name,
            image.text.as_deref().unwrap_or("").trim(),
            image.file_name
        ));
    }
    if !unread.is_empty() {
        out.push_str(&format!(
            "\n\n[The user attached {} ({}). You cannot see images: do not describe or guess their content; if the question depends on them, say that you cannot see images.]",
            what(unread.len()),
            names(&unread)
        ));
    }
    out
}

/// Checks a message before anything is stored or sent.
pub fn validate_user_text(text: &str) -> Result<&str> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(Error::InvalidInput {
            field: "message",
            message: "is empty".into(),
        });
    }
    Ok(trimmed)
}

/// A title from the first message: its first line, cut at a word boundary.
pub fn title_from(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() <= TITLE_CHARS {
        return line.to_owned();
    }
    let cut: String = line.chars().take(TITLE_CHARS).collect();
    let at_word = cut.rfind(' ').filter(|&i| i > TITLE_CHARS / 2);
    format!("{}…", &cut[..at_word.unwrap_or(cut.len())])
}

/// The status of a reply whose request failed.
pub const FAILED_REPLY_STATUS: MessageStatus = MessageStatus::Interrupted;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn stored(role: Role, content: &str) -> Message {
        Message {
            id: 0,
            session_id: 1,
            role,
            content: content.to_owned(),
            status: MessageStatus::Complete,
            error_code: None,
            suggestions: Vec::new(),
            sources: Vec::new(),
            attachments: Vec::new(),
            created_at: 0,
        }
    }

    #[test]
    fn the_request_is_system_prompt_history_then_the_new_message() {
        let history = [stored(Role::User, "q1"), stored(Role::Assistant, "a1")];
        let r = request_for(&SessionSetup::of(Persona::Office), &history, "q2", None);
        let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [Role::System, Role::User, Role::Assistant, Role::User]
        );
        assert_eq!(r.messages[3].content, "q2");
    }

    #[test]
    fn history_is_limited_to_the_latest_user_turns() {
        let history = [
            stored(Role::User, "q1"),
            stored(Role::Assistant, "a1"),
            stored(Role::User, "q2"),
            stored(Role::Assistant, "a2"),
            stored(Role::User, "q3"),
            stored(Role::Assistant, ""), // a failed reply with no text is left out
        ];
        let r = request_for(&SessionSetup::of(Persona::Office), &history, "q4", Some(2));
        let texts: Vec<&str> = r.messages[1..].iter().map(|m| m.content.as_str()).collect();
        assert_eq!(texts, ["q2", "a2", "q3", "q4"]);
        let r = request_for(&SessionSetup::of(Persona::Office), &history, "q4", Some(0));
        assert_eq!(r.messages.len(), 2);
    }

    #[test]
    fn the_tone_and_the_character_sheet_shape_the_system_prompt() {
        let polite = system_prompt_for(&SessionSetup {
            persona: Persona::Office,
            tone: Some(Tone::Polite),
            character: None,
        });
        let friendly = system_prompt_for(&SessionSetup {
            persona: Persona::Office,
            tone: Some(Tone::Friendly),
            character: None,
        });
        assert!(polite.contains("formal") && friendly.contains("friendly"));
        let setup = SessionSetup {
            persona: Persona::Character,
            tone: None,
            character: Some(crate::store::Character {
                name: "Haneul".into(),
                greeting: "Hi! Ready for Friday?".into(),
                context: "A cheerful colleague from the design team.".into(),
            }),
        };
        let prompt = system_prompt_for(&setup);
        for part in ["You are Haneul", "design team", "Ready for Friday?"] {
            assert!(prompt.contains(part), "{part} missing from {prompt}");
        }
    }

    #[test]
    fn a_stored_greeting_opens_no_turn_of_its_own() {
        // Chat templates such as Gemma's reject a conversation that starts with the assistant.
        let history = [
            stored(Role::Assistant, "Hi! I'm Haneul."),
            stored(Role::User, "q1"),
            stored(Role::Assistant, "a1"),
        ];
        let r = request_for(&SessionSetup::of(Persona::Character), &history, "q2", None);
        let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [Role::System, Role::User, Role::Assistant, Role::User]
        );
    }

    #[test]
    fn empty_messages_are_refused_naming_the_field() {
        let e = validate_user_text(" \n\t").unwrap_err();
        assert_eq!(e.to_string(), "message: is empty");
        assert_eq!(validate_user_text("  hi ").unwrap(), "hi");
    }

    #[test]
    fn titles_are_the_first_line_cut_at_a_word() {
        assert_eq!(title_from("Quarterly budget\nmore"), "Quarterly budget");
        let long =
            "Please summarise the attached quarterly budget report for the sales team by Friday";
        let t = title_from(long);
        assert!(
            t.ends_with('…') && t.chars().count() <= TITLE_CHARS + 1,
            "{t}"
        );
        assert!(long.starts_with(t.trim_end_matches('…')));
        let korean = "분기 예산 보고서를 요약해 주세요. ".repeat(5);
        assert!(title_from(&korean).chars().count() <= TITLE_CHARS + 1);
    }

    #[test]
    fn an_attached_image_reaches_the_model_as_a_note_that_it_cannot_see_it() {
        let mut message = stored(Role::User, "What does the chart show?");
        assert_eq!(prompt_text(&message, false), "What does the chart show?");
        message.attachments.push(crate::store::Attachment {
            id: 1,
            message_id: 1,
            kind: "image".into(),
            file_name: "chart.png".into(),
            mime: "image/png".into(),
            size_bytes: 10,
            stored_path: "/x/chart.png".into(),
            width: Some(1),
            height: Some(1),
            thumbnail: None,
            created_at: 0,
            text: None,
        });
        let text = prompt_text(&message, false);
        assert!(text.starts_with("What does the chart show?"));
        assert!(
            text.contains("chart.png") && text.contains("cannot see images"),
            "{text}"
        );
        // History messages with images get the same note.
        let history = vec![message, stored(Role::Assistant, "I cannot see it.")];
        let r = request_for(&SessionSetup::of(Persona::Office), &history, "ok", None);
        assert!(r.messages[1].content.contains("chart.png"));
        assert!(prompt_text(&history[0], true).contains("not shown again"));
    }

    #[test]
    fn the_text_ocr_read_in_an_image_goes_to_a_model_that_cannot_see_it() {
        let image = |name: &str, text: Option<&str>| crate::store::Attachment {
            id: 1,
            message_id: 1,
            kind: "image".into(),
            file_name: name.into(),
            mime: "image/png".into(),
            size_bytes: 10,
            stored_path: format!("/x/{name}"),
            width: Some(1),
            height: Some(1),
            thumbnail: None,
            created_at: 0,
            text: text.map(str::to_owned),
        };
        let mut message = stored(Role::User, "이 오류는 무슨 뜻인가요?");
        message.attachments = vec![
            image("error.png", Some("디스크 공간이 부족합니다 (E1042)")),
            image("photo.jpg", Some("  ")),
        ];
        let text = prompt_text(&message, false);
        assert!(text.contains("read by OCR"), "{text}");
        assert!(text.contains("디스크 공간이 부족합니다 (E1042)"), "{text}");
        // An image without text still gets the "cannot see" note, by name.
        assert!(
            text.contains("photo.jpg") && text.contains("cannot see images: do not describe"),
            "{text}"
        );
        // A vision model sees the image itself; the OCR text is not added.
        assert!(!prompt_text(&message, true).contains("E1042"));
    }

    #[test]
    fn a_persona_on_a_server_does_not_claim_to_run_on_the_users_computer() {
        let office = system_prompt_for(&SessionSetup::of(Persona::Office));
        assert!(office.contains(ON_THIS_COMPUTER), "{office}");
        let moved = on_server(&office);
        assert!(!moved.contains("user's computer"), "{moved}");
        assert!(moved.contains("a server of the user's organisation"));
    }
}
