//! Prompt-lookup (n-gram) decoding: drafting a reply's next tokens from its own sequence.
//!
//! An office answer copies long spans of what it was given: a clause of a retrieved passage, a
//! figure from the document being summarised, a name from earlier in the conversation. When
//! the last few tokens of a sequence (prompt and reply so far) occurred before, the tokens that
//! followed them then are a cheap guess at what follows now. The worker feeds that guess (the
//! draft) in the same batch as the token it has to feed anyway, samples at every drafted
//! position in order, keeps the draft while each sampled token equals the drafted one, and
//! removes the rest from the KV cache. Each kept token is the token plain decoding would have
//! sampled from the same logits with the same sampler state, so the output is unchanged
//! (identical at temperature 0, the same draws from the same seed when sampling); only the
//! number of decode calls falls. No second model is involved, so it works for every model
//! whose cache can drop its last positions (not recurrent or hybrid ones).
//!
//! This module is the policy, apart from llama.cpp: where a draft comes from ([`find_draft`]),
//! what a drafted row costs on this device ([`DecodeCost`]) and how long a reply's drafts
//! should be ([`DraftPolicy`]): drafting only where the expected confirmed tokens outweigh the
//! rows they cost, so open chat on a CPU is not slowed by guesses that fail, while the guesses
//! not drafted are still checked, for free, against what the reply says. Pure functions,
//! unit-tested without a model. The worker's `server` module does the batching.

use llama_cpp_2::token::LlamaToken;

use super::worker::NO_TOKEN;

/// The longest tail n-gram looked up: longer matches are rarer and add little certainty.
pub(crate) const NGRAM_MAX: usize = 4;
/// The shortest tail n-gram that may start a draft. One token repeats too often by chance
/// ("the", a comma) to predict what follows it.
pub(crate) const NGRAM_MIN: usize = 2;
/// The most rows a generation step holds once drafts are added: the replies' tokens and their
/// drafts together stay under 8 rows, where llama.cpp's CPU kernels compute each row as they do
/// a single token (from 8 rows on, the tiled K-quant matmul takes over and rounds differently),
/// so a reply verified beside another reply's draft is still the reply plain decoding gives.
/// Replies' own tokens always go in; only drafts are held to this.
pub(crate) const MAX_VERIFY_ROWS: usize = 7;
/// The most tokens one draft may hold: a lone reply's token and its draft fill
/// [`MAX_VERIFY_ROWS`].
pub(crate) const MAX_DRAFT: usize = MAX_VERIFY_ROWS - 1;

/// The tokens that followed the most recent earlier occurrence of `history`'s last n tokens
/// (`NGRAM_MAX` ≥ n ≥ `NGRAM_MIN`, the longest match first), at most `max` of them; empty when
/// the tail never occurred before. Positions without a token (image embeddings) match nothing
/// and end a draft.
pub(crate) fn find_draft(history: &[LlamaToken], max: usize) -> &[LlamaToken] {
    let n = history.len();
    if max == 0 || n < NGRAM_MIN + 1 {
        return &[];
    }
    let plain_tail = history.iter().rev().take_while(|&&t| t != NO_TOKEN).count();
    let tail_len = NGRAM_MAX.min(n - 1).min(plain_tail);
    if tail_len < NGRAM_MIN {
        return &[];
    }
    let tail = &history[n - tail_len..];
    // (end of the matching n-gram, its length); scanned from the most recent occurrence back.
    let mut best: Option<(usize, usize)> = None;
    for end in (NGRAM_MIN - 1..n - 1).rev() {
        let matched = (0..tail_len.min(end + 1))
            .take_while(|&k| history[end - k] == tail[tail_len - 1 - k])
            .count();
        if matched >= NGRAM_MIN && best.is_none_or(|(_, m)| matched > m) {
            best = Some((end, matched));
            if matched == tail_len {
                break;
            }
        }
    }
    let Some((end, _)) = best else {
        return &[];
    };
    let following = &history[end + 1..n.min(end + 1 + max)];
    let usable = following
        .iter()
        .position(|&t| t == NO_TOKEN)
        .unwrap_or(following.len());
    &following[..usable]
}

/// What drafting costs on this device: the time of a decode call as a line over its rows,
/// fitted to the generation steps seen so far (exponentially forgetting, so it follows the
/// machine's load). A CPU pays for every row (on a 2-core machine each row with logits costs
/// about ¾ of a one-row step); a GPU hardly notices a few more rows. Until the steps have told,
/// the prior is what the device suggests ([`DecodeCost::new`]).
#[derive(Debug, Clone)]
pub(crate) struct DecodeCost {
    // Decayed sums of rows (x), seconds (y), x², x·y and the weight.
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
    w: f64,
    prior: f64,
}

impl DecodeCost {
    /// How fast old steps are forgotten.
    const KEEP: f64 = 0.98;
    /// The prior for a model on the CPU (measured here: ¾ of a step per row with logits).
    pub(crate) const CPU: f64 = 0.75;
    /// The prior for a model whose layers are all on a GPU.
    pub(crate) const GPU: f64 = 0.1;

    /// No steps seen yet; `prior` stands in for the marginal cost until they tell.
    pub(crate) fn new(prior: f64) -> DecodeCost {
        DecodeCost {
            sx: 0.0,
            sy: 0.0,
            sxx: 0.0,
            sxy: 0.0,
            w: 0.0,
            prior,
        }
    }

    /// A decode call of `rows` rows, all of them replies' tokens and drafts, took `seconds`.
    pub(crate) fn record(&mut self, rows: usize, seconds: f64) {
        let x = rows as f64;
        self.sx = self.sx * Self::KEEP + x;
        self.sy = self.sy * Self::KEEP + seconds;
        self.sxx = self.sxx * Self::KEEP + x * x;
        self.sxy = self.sxy * Self::KEEP + x * seconds;
        self.w = self.w * Self::KEEP + 1.0;
    }

    /// The cost of one more row, as a fraction of a one-row step.
    pub(crate) fn marginal(&self) -> f64 {
        if self.w < 4.0 {
            return self.prior;
        }
        let (mx, my) = (self.sx / self.w, self.sy / self.w);
        let var = self.sxx / self.w - mx * mx;
        if var < 0.01 {
            // (Nearly) all steps had the same rows: nothing says what another row costs.
            return self.prior;
        }
        let slope = (self.sxy / self.w - mx * my) / var;
        let one_row = my + slope * (1.0 - mx);
        if one_row <= 0.0 {
            return self.prior;
        }
        (slope / one_row).clamp(0.0, 2.0)
    }
}

/// How likely one reply's next drafted token is to be confirmed, learned from its drafts, and
/// the draft length that this makes fastest.
///
/// Each drafted position is confirmed with probability `p` once the ones before it were, so a
/// draft of `d` tokens yields `1 + p + … + p^d` tokens for a decode call that costs
/// `1 + marginal · d` one-row steps; the length with the most tokens per cost wins, and 0 (no
/// draft) wins whenever guessing does not pay. A guess that was not drafted is still checked
/// against the tokens the reply then samples ([`DraftPolicy::watch`], [`DraftPolicy::observe`]),
/// so `p` is learned for free while drafting does not pay, and a reply that starts copying a
/// passage starts drafting as soon as its guesses prove right.
#[derive(Debug, Clone)]
pub(crate) struct DraftPolicy {
    confirmed: f64,
    tested: f64,
    /// A guess not drafted, and how much of it the sampled tokens matched so far.
    guess: Vec<LlamaToken>,
    matched: usize,
}

impl Default for DraftPolicy {
    fn default() -> Self {
        DraftPolicy {
            confirmed: Self::PRIOR * Self::PRIOR_WEIGHT,
            tested: Self::PRIOR_WEIGHT,
            guess: Vec::new(),
            matched: 0,
        }
    }
}

impl DraftPolicy {
    const PRIOR: f64 = 0.6;
    const PRIOR_WEIGHT: f64 = 2.0;
    /// Older guesses count less: a reply moves between copying and writing.
    const KEEP: f64 = 0.9;

    /// The estimated chance that a drafted token is confirmed.
    pub(crate) fn acceptance(&self) -> f64 {
        self.confirmed / self.tested
    }

    /// The draft length, at most `max`, with the most tokens per unit of decode cost.
    pub(crate) fn length(&self, marginal: f64, max: usize) -> usize {
        let p = self.acceptance();
        let (mut best, mut best_rate) = (0, 1.0);
        let (mut expected, mut reach) = (1.0, 1.0);
        for d in 1..=max.min(MAX_DRAFT) {
            reach *= p;
            expected += reach;
            let rate = expected / (1.0 + marginal * d as f64);
            if rate > best_rate * 1.02 {
                (best, best_rate) = (d, rate);
            }
        }
        best
    }

    /// Learns from a guess of `guessed` tokens of which the first `held` came true (a verified
    /// draft, or a watched guess).
    pub(crate) fn update(&mut self, guessed: usize, held: usize) {
        if guessed == 0 {
            return;
        }
        // Positions tested: the confirmed ones and the first wrong one.
        let tested = (held + 1).min(guessed) as f64;
        self.confirmed = self.confirmed * Self::KEEP + held as f64;
        self.tested = self.tested * Self::KEEP + tested;
    }

    /// Keeps `guess` (its first `MAX_DRAFT` tokens), which was not drafted, to check against the
    /// next sampled tokens (unless an earlier guess is still being checked).
    pub(crate) fn watch(&mut self, guess: &[LlamaToken]) {
        if self.guess.is_empty() && !guess.is_empty() {
            // As long as a draft could be, so that it is learned from as often.
            self.guess = guess[..guess.len().min(MAX_DRAFT)].to_vec();
            self.matched = 0;
        }
    }

    /// The reply sampled `token`: checks the watched guess, learning once it ends or fails.
    pub(crate) fn observe(&mut self, token: LlamaToken) {
        if self.guess.is_empty() {
            return;
        }
        if self.guess.get(self.matched) == Some(&token) {
            self.matched += 1;
            if self.matched < self.guess.len() {
                return;
            }
        }
        let guessed = self.guess.len();
        self.update(guessed, self.matched);
        self.guess.clear();
    }

    /// A real draft goes out: a watched guess would count the same tokens twice.
    pub(crate) fn drafting(&mut self) {
        self.guess.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ids: &[i32]) -> Vec<LlamaToken> {
        ids.iter().map(|&i| LlamaToken(i)).collect()
    }

    #[test]
    fn a_repeated_tail_drafts_what_followed_it_before() {
        // "1 2 3 4 5 6 ... 1 2 3" → 4 5 6 followed "1 2 3" before.
        let history = t(&[9, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3]);
        assert_eq!(find_draft(&history, 3), t(&[4, 5, 6]).as_slice());
        assert_eq!(
            find_draft(&history, 16),
            t(&[4, 5, 6, 7, 8, 1, 2, 3]).as_slice()
        );
    }

    #[test]
    fn the_longest_match_wins_over_a_more_recent_shorter_one() {
        // "2 3" occurs recently followed by 7; "1 2 3" occurs earlier followed by 4.
        let history = t(&[1, 2, 3, 4, 0, 2, 3, 7, 0, 1, 2, 3]);
        assert_eq!(find_draft(&history, 1), t(&[4]).as_slice());
    }

    #[test]
    fn among_equal_matches_the_most_recent_one_wins() {
        let history = t(&[5, 6, 1, 0, 5, 6, 2, 0, 5, 6]);
        assert_eq!(find_draft(&history, 1), t(&[2]).as_slice());
    }

    #[test]
    fn a_single_repeated_token_is_not_enough_to_draft() {
        let history = t(&[1, 2, 3, 9, 4, 5, 3]);
        assert!(find_draft(&history, 4).is_empty());
        assert!(find_draft(&t(&[1, 2]), 4).is_empty());
        assert!(find_draft(&t(&[1, 2, 1, 2]), 0).is_empty());
    }

    #[test]
    fn image_positions_neither_match_nor_enter_a_draft() {
        let n = NO_TOKEN.0;
        // The tail ends in an image: nothing to look up.
        assert!(find_draft(&t(&[1, 2, 1, n, n]), 4).is_empty());
        // Only the tokens after the image are looked up, and the draft stops where it was.
        let history = t(&[4, 1, 2, 3, n, 4, 1, 2]);
        assert_eq!(find_draft(&history, 8), t(&[3]).as_slice());
    }

    #[test]
    fn drafts_grow_with_acceptance_and_shrink_with_the_cost_of_a_row() {
        let mut sure = DraftPolicy::default();
        for _ in 0..20 {
            sure.update(MAX_DRAFT, MAX_DRAFT);
        }
        // A GPU: rows are nearly free, draft all that may be drafted.
        assert_eq!(sure.length(0.02, 16), MAX_DRAFT);
        assert_eq!(sure.length(0.02, 2), 2);
        // A CPU where a row costs half a step: still worth it for a copied span.
        assert!(sure.length(0.5, 16) >= 4);
        let mut unsure = DraftPolicy::default();
        for _ in 0..20 {
            unsure.update(2, 0);
        }
        assert!(unsure.acceptance() < 0.2);
        assert_eq!(
            unsure.length(0.5, 16),
            0,
            "guesses that fail do not pay on a CPU"
        );
    }

    #[test]
    fn guesses_not_drafted_are_checked_against_the_reply_and_start_drafting() {
        let mut policy = DraftPolicy::default();
        for _ in 0..20 {
            policy.update(1, 0);
        }
        assert_eq!(policy.length(0.75, 6), 0);
        // The reply starts copying: each watched guess comes true.
        for step in 0..10 {
            policy.watch(&t(&[step, step + 1]));
            policy.observe(LlamaToken(step));
            policy.observe(LlamaToken(step + 1));
        }
        assert!(policy.acceptance() > 0.8, "{}", policy.acceptance());
        assert!(policy.length(0.75, 6) > 0);
        // A guess that fails at its first token counts one tested position.
        let before = policy.acceptance();
        policy.watch(&t(&[7, 8, 9]));
        policy.observe(LlamaToken(1));
        assert!(policy.acceptance() < before);
        // A real draft drops the watched guess, so its tokens are not counted twice.
        policy.watch(&t(&[4, 5]));
        policy.drafting();
        let now = policy.acceptance();
        policy.observe(LlamaToken(4));
        policy.observe(LlamaToken(5));
        assert_eq!(policy.acceptance(), now);
    }

    #[test]
    fn the_cost_of_a_row_is_learned_from_the_steps() {
        let mut cpu = DecodeCost::new(DecodeCost::CPU);
        assert_eq!(cpu.marginal(), DecodeCost::CPU);
        for rows in [1, 3, 1, 7, 2, 1, 5, 1] {
            // 8 ms for a row, 4 ms for each more.
            cpu.record(rows, 0.008 + 0.004 * (rows - 1) as f64);
        }
        assert!((cpu.marginal() - 0.5).abs() < 1e-6, "{}", cpu.marginal());
        let mut gpu = DecodeCost::new(DecodeCost::CPU);
        for rows in [1, 7, 1, 7, 4, 1] {
            gpu.record(rows, 0.010 + 0.0001 * rows as f64);
        }
        assert!(gpu.marginal() < 0.02);
        // Steps of one size alone say nothing about another row.
        let mut flat = DecodeCost::new(DecodeCost::GPU);
        for _ in 0..10 {
            flat.record(1, 0.008);
        }
        assert_eq!(flat.marginal(), DecodeCost::GPU);
    }
}
