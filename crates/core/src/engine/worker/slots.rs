//! Slot scheduling, apart from llama.cpp: which free slot takes a prompt, and how much of its
//! cached prefix it keeps. A pure policy over token lists, so it is unit-tested without a model.
//!
//! Each slot keeps the tokens of its last request in its KV cache. A new prompt goes to the free
//! slot whose cache shares the longest prefix with it (the next turn of a conversation reads
//! only what is new), then to the least recently used one. Positions that hold no token (an
//! image's embeddings, [`NO_TOKEN`]) never match, so no later prompt reuses them.

use std::time::Instant;

use llama_cpp_2::token::LlamaToken;

/// Stands in the slot cache for positions that hold no token (image embeddings).
pub(crate) const NO_TOKEN: LlamaToken = LlamaToken(-1);

/// What slot choice looks at of one slot.
#[derive(Debug, Clone, Copy)]
pub(super) struct SlotView<'a> {
    pub(super) cache: &'a [LlamaToken],
    pub(super) last_used: Instant,
    pub(super) free: bool,
}

/// The free slot for `prompt`: the longest common prefix with its cache, then the least
/// recently used; `None` when every slot is busy.
pub(super) fn choose<'a>(
    slots: impl IntoIterator<Item = SlotView<'a>>,
    prompt: &[LlamaToken],
) -> Option<usize> {
    slots
        .into_iter()
        .enumerate()
        .filter(|(_, s)| s.free)
        .max_by(|(_, a), (_, b)| {
            common_prefix(a.cache, prompt)
                .cmp(&common_prefix(b.cache, prompt))
                .then(b.last_used.cmp(&a.last_used))
        })
        .map(|(i, _)| i)
}

/// How many leading positions of `cache` a slot keeps for `prompt`: the common prefix, less the
/// last prompt token, which is always read again because its logits start the reply.
pub(super) fn reusable_prefix(cache: &[LlamaToken], prompt: &[LlamaToken]) -> usize {
    common_prefix(cache, prompt).min(prompt.len().saturating_sub(1))
}

/// Leading positions equal in both, never counting a position without a token.
pub(crate) fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter()
        .zip(b)
        .take_while(|(x, y)| x == y && **x != NO_TOKEN)
        .count()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn tokens(ids: &[i32]) -> Vec<LlamaToken> {
        ids.iter().map(|&i| LlamaToken(i)).collect()
    }

    fn view(cache: &[LlamaToken], age_s: u64, free: bool, now: Instant) -> SlotView<'_> {
        SlotView {
            cache,
            last_used: now - Duration::from_secs(age_s),
            free,
        }
    }

    #[test]
    fn the_next_turn_of_a_conversation_goes_to_the_slot_that_holds_its_start() {
        let now = Instant::now();
        let (a, b) = (tokens(&[1, 2, 3, 4]), tokens(&[1, 9, 9]));
        let prompt = tokens(&[1, 2, 3, 4, 5, 6]);
        // b was used more recently, but a holds four tokens of the prompt.
        assert_eq!(
            choose([view(&a, 10, true, now), view(&b, 1, true, now)], &prompt),
            Some(0)
        );
    }

    #[test]
    fn among_slots_sharing_nothing_the_least_recently_used_goes_first() {
        let now = Instant::now();
        let (a, b, c) = (tokens(&[7]), tokens(&[8]), tokens(&[]));
        let prompt = tokens(&[1, 2]);
        let slots = [
            view(&a, 5, true, now),
            view(&b, 50, true, now),
            view(&c, 20, true, now),
        ];
        assert_eq!(choose(slots, &prompt), Some(1));
    }

    #[test]
    fn a_busy_slot_is_never_chosen_and_with_none_free_there_is_no_choice() {
        let now = Instant::now();
        let (a, b) = (tokens(&[1, 2, 3]), tokens(&[]));
        let prompt = tokens(&[1, 2, 3, 4]);
        assert_eq!(
            choose([view(&a, 1, false, now), view(&b, 1, true, now)], &prompt),
            Some(1)
        );
        assert_eq!(
            choose([view(&a, 1, false, now), view(&b, 1, false, now)], &prompt),
            None
        );
    }

    #[test]
    fn the_last_prompt_token_is_always_read_again() {
        let cache = tokens(&[1, 2, 3]);
        assert_eq!(reusable_prefix(&cache, &tokens(&[1, 2, 3])), 2);
        assert_eq!(reusable_prefix(&cache, &tokens(&[1, 2, 3, 4])), 3);
        assert_eq!(reusable_prefix(&cache, &tokens(&[1, 5])), 1);
        assert_eq!(reusable_prefix(&cache, &tokens(&[])), 0);
    }

    #[test]
    fn positions_holding_an_image_never_match_a_later_prompt() {
        let cache = vec![LlamaToken(1), NO_TOKEN, NO_TOKEN, LlamaToken(2)];
        let prompt = vec![
            LlamaToken(1),
            NO_TOKEN,
            NO_TOKEN,
            LlamaToken(2),
            LlamaToken(3),
        ];
        assert_eq!(common_prefix(&cache, &prompt), 1);
    }
}
