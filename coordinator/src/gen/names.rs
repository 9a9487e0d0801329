//! Deterministic, unique, realistic-looking place names built from syllables.

use std::collections::HashSet;
use std::io;

use super::math::{stream, Rng};

/// Random-stream purpose tag for station names.
const NAMES: u64 = 0x6e61_6d65;

/// The most stations [`station_names`] makes.
pub const MAX_STATIONS: usize = 4_000_000;

/// The longest name in bytes, as in the One Billion Row Challenge rules.
pub const MAX_NAME_BYTES: usize = 60;

/// Latin-script syllables, all ASCII.
const LATIN: &[&str] = &[
    "ka", "ber", "lin", "mar", "sa", "to", "ri", "no", "va", "del", "mon", "te", "por", "la", "ga",
    "an", "ton", "vil", "ches", "ter", "ia", "ra", "na", "go", "bo", "dan", "zi", "mi", "lo",
    "kin", "sha", "u", "o", "e", "ar", "el", "ing", "ko", "yo", "ha", "pa", "ste", "gra", "fi",
    "lu", "qui", "tan", "ma", "ne", "ci", "dor", "tu", "bri", "cas", "tel", "ven", "rot", "wa",
    "ji", "ab", "ad", "al", "is", "ur", "gen", "chi", "cu", "ho", "nam", "phu", "ken", "ya", "mu",
    "ba", "sen", "ti", "que", "lia", "ro", "da", "vi", "le", "mo", "sol", "pe", "bur",
];

/// Place-name endings, used as a word's last syllable.
const ENDINGS: &[&str] = &[
    "burg", "ham", "ford", "ston", "wick", "ville", "mouth", "field", "by", "holm", "stad", "heim",
    "hof", "dorf", "grad", "pur", "abad", "polis", "berg", "ia", "ow", "ice", "ino",
];

/// Syllables with non-ASCII letters (2-byte UTF-8).
const ACCENTED: &[&str] = &[
    "são", "zür", "kra", "ków", "ō", "ōsa", "mün", "gö", "kö", "mål", "bø", "łó", "wro", "cła",
    "ñu", "ça", "gué", "ré", "île", "şe", "ří", "žil", "ěj", "ğa", "dž", "ül", "ä", "ö", "é", "àn",
    "ñe", "õ", "ý", "ést", "ôn", "ū", "ī", "ą", "ę", "ś", "ź", "ő", "ű", "ø", "å", "æ", "þór", "ð",
    "ıs", "ká", "jó", "lò", "cé", "rê", "sü", "tö",
];

/// Cyrillic syllables (2-byte UTF-8).
const CYRILLIC: &[&str] = &[
    "мо", "ск", "ва", "ки", "ев", "но", "во", "си", "бир", "ск", "ка", "зань", "ро", "стов",
    "омск", "пе", "рм", "са", "ма", "ра", "яр", "ту", "ла", "бря", "нск",
];

/// CJK characters (3-byte UTF-8).
const CJK: &[&str] = &[
    "京", "都", "大", "阪", "山", "川", "海", "北", "南", "島", "東", "西", "名", "古", "屋", "福",
    "岡", "広", "神", "戸", "上", "原", "田", "中", "新", "江", "州", "城",
];

/// Words that start or join multi-word names.
const PREFIXES: &[&str] = &[
    "San",
    "Saint",
    "Port",
    "New",
    "Bad",
    "El",
    "Los",
    "Santa",
    "Fort",
    "Ciudad de",
    "Nueva",
    "Sankt",
    "Île de",
    "Nizhny",
    "Las",
];

/// `count` distinct station names for `seed`, in a fixed order.
///
/// Each name is valid UTF-8 of 1 to [`MAX_NAME_BYTES`] bytes, with no `;`,
/// no control characters and no leading or trailing space. About a quarter
/// contain non-ASCII letters (accented Latin, Cyrillic or CJK). The first `n`
/// names for a seed do not depend on `count`.
///
/// # Errors
///
/// `InvalidInput` when `count` is 0 or above [`MAX_STATIONS`].
pub fn station_names(count: usize, seed: u64) -> io::Result<Vec<String>> {
    if count == 0 || count > MAX_STATIONS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("station count must be 1..={MAX_STATIONS}, got {count}"),
        ));
    }
    let mut rng = stream(seed, NAMES, 0);
    let mut seen = HashSet::with_capacity(count);
    let mut names = Vec::with_capacity(count);
    while names.len() < count {
        let name = one_name(&mut rng);
        if name.len() <= MAX_NAME_BYTES && seen.insert(name.clone()) {
            names.push(name);
        }
    }
    Ok(names)
}

fn pick<'a>(rng: &mut Rng, list: &[&'a str]) -> &'a str {
    list[rng.below(list.len() as u64) as usize]
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A word of 1 to 4 Latin syllables and maybe an ending; one word in four
/// has accented syllables.
fn latin_word(rng: &mut Rng) -> String {
    let syllables = 1 + rng.below(2) + rng.below(3); // 1..=4, mostly 2-3
    let accented = rng.below(4) == 0;
    let mut word = String::new();
    for _ in 0..syllables {
        if accented && rng.below(3) == 0 {
            word.push_str(pick(rng, ACCENTED));
        } else {
            word.push_str(pick(rng, LATIN));
        }
    }
    if rng.below(10) < 3 {
        word.push_str(pick(rng, ENDINGS));
    }
    capitalized(&word)
}

fn one_name(rng: &mut Rng) -> String {
    let kind = rng.below(1000);
    if kind < 25 {
        // CJK: two or three characters.
        let n = 2 + rng.below(2);
        return (0..n).map(|_| pick(rng, CJK)).collect();
    }
    if kind < 55 {
        // Cyrillic: one or two words.
        let words = 1 + u64::from(rng.below(4) == 0);
        let parts: Vec<String> = (0..words)
            .map(|_| {
                let n = 2 + rng.below(3);
                capitalized(&(0..n).map(|_| pick(rng, CYRILLIC)).collect::<String>())
            })
            .collect();
        return parts.join("-");
    }
    if kind < 60 {
        // Rare long names (tests the 60-byte limit; too long ones are retried).
        let words = 4 + rng.below(4);
        let parts: Vec<String> = (0..words).map(|_| latin_word(rng)).collect();
        return parts.join(" ");
    }
    let mut name = String::new();
    if rng.below(12) == 0 {
        name.push_str(pick(rng, PREFIXES));
        name.push(if rng.below(4) == 0 { '-' } else { ' ' });
    }
    let words = match rng.below(100) {
        0..=69 => 1,
        70..=91 => 2,
        _ => 3,
    };
    for w in 0..words {
        if w > 0 {
            name.push(if rng.below(6) == 0 { '-' } else { ' ' });
        }
        name.push_str(&latin_word(rng));
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_bounded_and_clean() {
        const COUNT: usize = 200_000;
        let names = station_names(COUNT, 42).unwrap();
        let set: HashSet<&String> = names.iter().collect();
        assert_eq!(set.len(), COUNT);
        let mut non_ascii = 0;
        let mut longest = 0;
        for n in &names {
            assert!(!n.is_empty() && n.len() <= MAX_NAME_BYTES, "{n:?}");
            assert!(
                !n.contains(';') && !n.chars().any(char::is_control),
                "{n:?}"
            );
            assert_eq!(n.trim(), n);
            non_ascii += usize::from(!n.is_ascii());
            longest = longest.max(n.len());
        }
        assert!(non_ascii > COUNT / 10, "non-ASCII names: {non_ascii}");
        assert!(longest > 40, "longest name {longest} bytes");
    }

    #[test]
    fn names_are_a_stable_prefix() {
        let small = station_names(413, 7).unwrap();
        let big = station_names(10_000, 7).unwrap();
        assert_eq!(small[..], big[..413]);
        assert_ne!(small, station_names(413, 8).unwrap());
    }

    #[test]
    fn bad_counts_are_rejected() {
        assert!(station_names(0, 1).is_err());
        assert!(station_names(MAX_STATIONS + 1, 1).is_err());
        assert_eq!(station_names(1, 1).unwrap().len(), 1);
    }
}
