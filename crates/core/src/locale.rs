//! The user's interface language: Korean when the system locale is Korean, English otherwise.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UiLanguage {
    Ko,
    En,
}

/// The system locale as a BCP 47 tag (`ko-KR`), `en-US` when none can be read.
pub fn system_locale() -> String {
    sys_locale::get_locale().unwrap_or_else(|| "en-US".to_owned())
}

/// Picks the UI language for a locale tag such as `ko-KR`, `ko_KR.UTF-8` or `en-US`.
pub fn ui_language(locale: &str) -> UiLanguage {
    let lang = locale.split(['-', '_', '.', '@']).next().unwrap_or("");
    if lang.eq_ignore_ascii_case("ko") {
        UiLanguage::Ko
    } else {
        UiLanguage::En
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn korean_locales_in_every_spelling_pick_korean() {
        for tag in ["ko", "ko-KR", "ko_KR.UTF-8", "KO-kr"] {
            assert_eq!(ui_language(tag), UiLanguage::Ko, "{tag}");
        }
        for tag in ["en-US", "C", "", "kok-IN", "ja_JP.UTF-8"] {
            assert_eq!(ui_language(tag), UiLanguage::En, "{tag}");
        }
    }
}
