//! Passphrase strength for sealed backups (spec §5.5, BAK-1: an implementation
//! warns when a backup passphrase is weak). The estimate is zxcvbn's: the
//! number of guesses a cracker needs, from dictionaries, keyboard patterns,
//! dates, repeats and sequences, mapped to a score from 0 to 4.
//!
//! The estimate is advice for the interface; the backup format accepts any
//! non-empty passphrase (BAK-4).

/// The score under which a passphrase is weak: below 3 of 4, an attacker who
/// copied the backup file can guess it offline, even at Argon2id's cost.
pub const WEAK_BELOW: u8 = 3;

/// A passphrase's strength.
#[derive(Debug, Clone, PartialEq)]
pub struct Strength {
    /// zxcvbn's score, 0 (guessed at once) to 4 (very hard to guess).
    pub score: u8,
    /// log10 of the estimated number of guesses.
    pub guesses_log10: f64,
    /// What makes it weak, if zxcvbn names something (English).
    pub warning: Option<String>,
    /// What would make it stronger (English).
    pub suggestions: Vec<String>,
}

impl Strength {
    /// Whether to warn: a score under [`WEAK_BELOW`].
    pub fn is_weak(&self) -> bool {
        self.score < WEAK_BELOW
    }
}

/// The strength of `passphrase`, with `user_inputs` (the user's name, the app's
/// name) counted as known words.
pub fn strength(passphrase: &str, user_inputs: &[&str]) -> Strength {
    let e = zxcvbn::zxcvbn(passphrase, user_inputs);
    let feedback = e.feedback();
    Strength {
        score: u8::from(e.score()),
        guesses_log10: e.guesses_log10(),
        warning: feedback.and_then(|f| f.warning()).map(|w| w.to_string()),
        suggestions: feedback
            .map(|f| f.suggestions().iter().map(|s| s.to_string()).collect())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_passwords_are_weak_and_long_random_phrases_are_not() {
        assert!(strength("password1", &[]).is_weak());
        assert!(strength("alice2026", &["alice"]).is_weak());
        assert!(strength("", &[]).is_weak());
        let s = strength("vortex plum gravel orbit sixty mauve", &[]);
        assert!(!s.is_weak(), "{s:?}");
    }

    #[test]
    fn a_weak_passphrase_says_why_or_how_to_improve() {
        let s = strength("qwerty", &[]);
        assert!(s.warning.is_some() || !s.suggestions.is_empty());
    }
}
