//! `ph`: phone numbers, as E.164 digits without the `+` (`16505551212`).
//!
//! Meta's docs: "remove symbols, letters and leading zeros; must include the country
//! code". Neither reference adds a missing country code or understands a trunk `(0)`;
//! §5.3 asks us to do both. Decisions:
//!
//! * **Characters.** Digits, whitespace, `- . / ( ) [ ]` and Unicode dashes are allowed;
//!   a leading `+` and a leading `tel:` are understood; an extension at the end (`ext.
//!   123`, `x123`, `#123`, `;ext=123` in a `tel:` URI) is dropped, because Meta matches
//!   the subscriber number. Any other letter makes the value invalid (`1-800-FLOWERS`
//!   is a vanity number, not a person's phone; the param builder turns it into `1800`).
//! * **International form**: `+CC…`, `00CC…` (the ITU prefix used almost everywhere),
//!   and `011CC…` (North America) when the region is unknown or is a `+1` country.
//!   A trunk `(0)` after the country code is dropped (`+49 (0)171 1234567` →
//!   `491711234567`; all references keep the 0, which Meta cannot match).
//! * **National form** with a known region (the event's `country`, else the configured
//!   default region): the trunk prefix is removed and the region's calling code added
//!   (`0171 1234567` + `de` → `491711234567`, `(650) 555-1212` + `us` →
//!   `16505551212`). Digits that already start with the region's calling code and
//!   form a possible number with it are taken as already international
//!   (`16505551212` + `us` stays), which also makes normalisation idempotent.
//! * **National form without any region**: the digits are kept, leading zeros removed,
//!   exactly as both references do (`(555) 123-4567` → `5551234567`); we cannot know
//!   the country. 7–15 digits are required (`12345` is refused).
//! * **Validation**: the calling code must exist and the national number must have a
//!   length that the metadata lists as possible for that code. We deliberately do not
//!   call `is_valid` (≈10 regex matches per number) on the hot path: an unassigned but
//!   well-formed number simply fails to match at Meta. Only the ambiguous `011…`
//!   without a region uses it, to tell `011 44 20 7946 0958` (international) from a
//!   national number that starts with `011`.
//!
//! Speed: `phonenumber` costs several µs per parse, ~70 ms and ~5 MB to load its
//! database (it parses ~1,500 regular expressions), and every regex it runs goes
//! through one process-wide `Mutex`-guarded LRU cache (capacity 100, so patterns are
//! recompiled as they are evicted), which would serialise all request threads. So fast
//! paths handle the common cases without the parser: a table that build.rs writes from
//! the same metadata (calling codes, possible lengths, trunk prefixes, rule sources;
//! `phone_meta.rs`) plus our own compiled, anchored copies of the
//! national-prefix-for-parsing rules (each compiled when its calling code or region is
//! first seen: all of them at once would hold ~10 MB of automata for the handful a
//! deployment uses). Whenever a trunk prefix, an international prefix or a parsing
//! rule could apply, the parser decides; a number no reading of which has a possible
//! length is refused without it. The parser's database is loaded on the first number
//! that needs it ([`crate::warm_up_parser`] loads it up front). Unit tests check that
//! the fast paths agree with the parser on every example number in the metadata and
//! that the fast refusal never refuses what the parser accepts.

use crate::NormalizeError;
use crate::location::CountryCode;
use crate::text::{is_space, trim};
use phonenumber::country::Id;
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::{LazyLock, OnceLock};

/// Enough for any E.164 number (≤ 15 digits) plus an international prefix and slack.
const MAX_DIGITS: usize = 24;

/// A short run of ASCII digits on the stack.
#[derive(Clone, Copy)]
struct Digits {
    buf: [u8; MAX_DIGITS],
    len: usize,
}

impl Digits {
    const fn new() -> Self {
        Digits {
            buf: [0; MAX_DIGITS],
            len: 0,
        }
    }

    fn from_slice(digits: &[u8]) -> Result<Self, NormalizeError> {
        let mut d = Digits::new();
        for &b in digits {
            d.push(b)?;
        }
        Ok(d)
    }

    fn push(&mut self, digit: u8) -> Result<(), NormalizeError> {
        let slot = self
            .buf
            .get_mut(self.len)
            .ok_or(NormalizeError::InvalidPhone)?;
        *slot = digit;
        self.len += 1;
        Ok(())
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

/// A number split into calling code and national significant number.
struct E164 {
    cc: u16,
    national: Digits,
}

/// What a scan of the raw text found.
struct Scanned {
    digits: Digits,
    plus: bool,
    /// Index in `digits` of a `0` written as `(0)` after at least one digit.
    trunk_at: Option<usize>,
}

fn is_separator(c: char) -> bool {
    is_space(c)
        || matches!(
            c,
            '-' | '.' | '/' | '(' | ')' | '[' | ']' | '\u{2010}'..='\u{2015}' | '\u{2212}'
        )
}

/// Length in bytes of `(0)` (inner spaces allowed) at the start of `rest`, which
/// begins right after the `(`.
fn trunk_group_len(rest: &str) -> Option<usize> {
    let a = rest.trim_start_matches(is_space);
    let b = a.strip_prefix('0')?;
    let c = b.trim_start_matches(is_space);
    c.strip_prefix(')')?;
    Some(rest.len() - c.len() + 1)
}

/// True when `rest` is an extension: marker, optional `: = .` and spaces, 1–10 digits,
/// then nothing but spaces.
fn is_extension(rest: &str) -> bool {
    const MARKERS: [&str; 5] = ["extension", "ext", "ex", "x", "#"];
    let Some(after) = MARKERS.iter().find_map(|m| {
        rest.get(..m.len())
            .filter(|p| p.eq_ignore_ascii_case(m))
            .and_then(|_| rest.get(m.len()..))
    }) else {
        return false;
    };
    let after = after.trim_start_matches(|c: char| is_space(c) || matches!(c, '.' | ':' | '='));
    let digits = after.bytes().take_while(u8::is_ascii_digit).count();
    (1..=10).contains(&digits) && after.get(digits..).is_some_and(|t| t.chars().all(is_space))
}

fn scan(value: &str) -> Result<Scanned, NormalizeError> {
    let mut s = Scanned {
        digits: Digits::new(),
        plus: false,
        trunk_at: None,
    };
    let tel = value
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("tel:"));
    let mut i = if tel { 4 } else { 0 };
    while let Some(c) = value.get(i..).and_then(|r| r.chars().next()) {
        let rest_after = value.get(i + c.len_utf8()..).unwrap_or("");
        match c {
            '0'..='9' => s.digits.push(c as u8)?,
            '+' if s.digits.len == 0 && !s.plus => s.plus = true,
            '(' if s.digits.len > 0 && s.trunk_at.is_none() => {
                if let Some(n) = trunk_group_len(rest_after) {
                    s.trunk_at = Some(s.digits.len);
                    s.digits.push(b'0')?;
                    i += c.len_utf8() + n;
                    continue;
                }
            }
            ';' if tel => break,
            c if is_separator(c) => {}
            c if (c.is_ascii_alphabetic() || c == '#') && s.digits.len > 0 => {
                if is_extension(value.get(i..).unwrap_or("")) {
                    break;
                }
                return Err(NormalizeError::InvalidPhone);
            }
            _ => return Err(NormalizeError::InvalidPhone),
        }
        i += c.len_utf8();
    }
    Ok(s)
}

/// What the fast path needs to know about one calling code.
struct CodeInfo {
    /// Bit `n` set when a national number of `n` digits is possible.
    lengths: u32,
    /// National (trunk) prefixes of the regions sharing this code.
    prefixes: &'static [&'static str],
    /// Sources of the regions' national-prefix-for-parsing rules.
    rule_sources: &'static [&'static str],
    /// Those rules, anchored, as one set (one pass over the digits for all of them);
    /// compiled on first use, see [`CodeInfo::rules`].
    rules: OnceLock<RuleSet>,
}

impl CodeInfo {
    fn possible(&self, len: usize) -> bool {
        len < 32 && self.lengths & (1 << len) != 0
    }

    /// The compiled rule set. Compiling every code's set up front cost ~10 MB of
    /// automata and most of the start-up time, for the few calling codes a deployment
    /// actually sees; compiling on first use gives the same answers.
    fn rules(&self) -> &RuleSet {
        self.rules.get_or_init(|| RuleSet::new(self.rule_sources))
    }
}

/// What the national path needs to know about one region.
struct RegionInfo {
    id: Id,
    cc: u16,
    national_prefix: Option<&'static str>,
    /// Source of the region's national-prefix-for-parsing rule.
    rule_source: Option<&'static str>,
    /// That rule, anchored at the start; compiled on first use ([`RegionInfo::rule`]).
    rule: OnceLock<Option<Rule>>,
    /// Source of the region's international (IDD) prefix pattern.
    idd_source: Option<&'static str>,
    /// That pattern, anchored; compiled on first use ([`RegionInfo::idd`]).
    idd: OnceLock<Option<Rule>>,
}

impl RegionInfo {
    fn rule(&self) -> Option<&Rule> {
        self.rule
            .get_or_init(|| self.rule_source.map(Rule::new))
            .as_ref()
    }

    fn idd(&self) -> Option<&Rule> {
        self.idd
            .get_or_init(|| self.idd_source.map(Rule::new))
            .as_ref()
    }
}

struct Tables {
    /// Indexed by calling code (1–999).
    codes: Vec<Option<CodeInfo>>,
    /// Indexed by `(a - b'A') * 26 + (b - b'A')` of the upper-case alpha-2 code.
    regions: Vec<Option<RegionInfo>>,
}

// `CODE_FACTS` and `REGION_FACTS`, written by build.rs from the same `phonenumber`
// metadata (src/phone_meta.rs): building the tables below from them does not load
// `phonenumber`'s database, which only the parser fallback needs.
include!(concat!(env!("OUT_DIR"), "/phone_tables.rs"));

static TABLES: LazyLock<Tables> = LazyLock::new(build_tables);

/// Our own compiled copy of a metadata national-prefix-for-parsing rule, anchored:
/// `phonenumber` applies these only when they match at the start, and its own regex
/// cache takes a global lock (and recompiles on eviction) on every use, so the fast
/// path must not touch it. `None` (a rule that did not compile; never seen) counts as
/// always applying, which sends every number of that region to the parser.
///
/// Rules only ever see ASCII digits, so they are compiled without Unicode classes
/// (`\d` = `[0-9]`; the same matches on such input, and automata a fraction of the
/// size); a rule that needs Unicode mode to compile gets it.
#[derive(Clone)]
struct Rule(Option<Regex>);

/// Several anchored rules matched in one pass; `None` (did not compile) or a
/// non-empty set that matches counts as applying.
struct RuleSet(Option<RegexSet>);

impl RuleSet {
    fn new(sources: &[&str]) -> RuleSet {
        let build = |unicode: bool| {
            RegexSetBuilder::new(sources.iter().map(|s| format!("^(?:{s})")))
                .ignore_whitespace(true)
                .unicode(unicode)
                .build()
                .ok()
        };
        RuleSet(build(false).or_else(|| build(true)))
    }

    fn applies(&self, digits: &str) -> bool {
        self.0.as_ref().is_none_or(|set| set.is_match(digits))
    }
}

impl Rule {
    fn new(source: &str) -> Rule {
        let pattern = format!("^(?:{source})");
        let build = |unicode: bool| {
            RegexBuilder::new(&pattern)
                .ignore_whitespace(true)
                .unicode(unicode)
                .build()
                .ok()
        };
        Rule(build(false).or_else(|| build(true)))
    }

    fn applies(&self, digits: &str) -> bool {
        self.0.as_ref().is_none_or(|r| r.is_match(digits))
    }

    /// How many leading digits the rule strips: `Ok(None)` when it does not match,
    /// `Err` when it cannot tell (the rule did not compile, or a capture group took
    /// part, which means the parser rewrites rather than strips).
    fn strip_len(&self, digits: &str) -> Result<Option<usize>, ()> {
        let re = self.0.as_ref().ok_or(())?;
        match re.captures(digits) {
            None => Ok(None),
            Some(c) if c.iter().skip(1).any(|g| g.is_some()) => Err(()),
            Some(c) => Ok(c.get(0).map(|m| m.end())),
        }
    }
}

fn build_tables() -> Tables {
    let mut codes: Vec<Option<CodeInfo>> = (0..1000).map(|_| None).collect();
    let mut regions: Vec<Option<RegionInfo>> = (0..26 * 26).map(|_| None).collect();
    for &(cc, lengths, prefixes, rule_sources) in CODE_FACTS {
        if let Some(slot) = codes.get_mut(usize::from(cc)) {
            *slot = Some(CodeInfo {
                lengths,
                prefixes,
                rule_sources,
                rules: OnceLock::new(),
            });
        }
    }
    for &(id, cc, national_prefix, rule_source, idd_source) in REGION_FACTS {
        if let (&[a @ b'A'..=b'Z', b @ b'A'..=b'Z'], Ok(parsed)) = (id.as_bytes(), Id::from_str(id))
        {
            let index = usize::from(a - b'A') * 26 + usize::from(b - b'A');
            if let Some(slot) = regions.get_mut(index) {
                *slot = Some(RegionInfo {
                    id: parsed,
                    cc,
                    national_prefix,
                    rule_source,
                    rule: OnceLock::new(),
                    idd_source,
                    idd: OnceLock::new(),
                });
            }
        }
    }
    Tables { codes, regions }
}

fn code_info(cc: u16) -> Option<&'static CodeInfo> {
    TABLES.codes.get(usize::from(cc)).and_then(Option::as_ref)
}

fn region_info(country: CountryCode) -> Option<&'static RegionInfo> {
    let [a, b] = country.upper();
    let index = usize::from(a.checked_sub(b'A')?) * 26 + usize::from(b.checked_sub(b'A')?);
    TABLES.regions.get(index).and_then(Option::as_ref)
}

fn ascii(digits: &[u8]) -> &str {
    std::str::from_utf8(digits).unwrap_or("")
}

/// Calling codes are a prefix code: at most one of the first 1, 2, 3 digits matches.
fn split_calling_code(digits: &[u8]) -> Option<(u16, &[u8])> {
    (1..=3).find_map(|n| {
        let head = digits.get(..n)?;
        if head.first() == Some(&b'0') {
            return None;
        }
        let cc = head
            .iter()
            .fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
        code_info(cc).map(|_| (cc, digits.get(n..).unwrap_or(&[])))
    })
}

/// Parse with the `phonenumber` crate. `digits` are ASCII digits; `plus` prefixes a `+`.
fn parse_slow(
    region: Option<Id>,
    digits: &[u8],
    plus: bool,
) -> Result<phonenumber::PhoneNumber, NormalizeError> {
    let mut buf = [0u8; MAX_DIGITS + 1];
    let start = usize::from(plus);
    if plus {
        buf[0] = b'+';
    }
    let dst = buf
        .get_mut(start..start + digits.len())
        .ok_or(NormalizeError::InvalidPhone)?;
    dst.copy_from_slice(digits);
    let text = buf
        .get(..start + digits.len())
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or(NormalizeError::InvalidPhone)?;
    phonenumber::parse(region, text).map_err(|_| NormalizeError::InvalidPhone)
}

/// Turn a parsed number into calling code + national digits, checking the length.
fn from_parsed(number: &phonenumber::PhoneNumber) -> Result<E164, NormalizeError> {
    let cc = number.code().value();
    let national = number.national();
    let mut digits = Digits::new();
    for _ in 0..national.zeros() {
        digits.push(b'0')?;
    }
    let value = national.value();
    if value != 0 {
        let mut tmp = [0u8; 20];
        let mut n = value;
        let mut k = tmp.len();
        while n > 0 && k > 0 {
            k -= 1;
            tmp[k] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        for &b in tmp.get(k..).unwrap_or(&[]) {
            digits.push(b)?;
        }
    }
    let info = code_info(cc).ok_or(NormalizeError::InvalidPhone)?;
    if !info.possible(digits.len) {
        return Err(NormalizeError::InvalidPhone);
    }
    // A national number starting with 0 is real only where the plan keeps the zero
    // (Italy's landlines, a few others); elsewhere it is what remains of a mangled
    // prefix (`0000001` in `de` would become `4900001`, which reads back as a
    // different number), so it must pass the full check.
    if digits.as_bytes().first() == Some(&b'0') && !number.is_valid() {
        return Err(NormalizeError::InvalidPhone);
    }
    Ok(E164 {
        cc,
        national: digits,
    })
}

/// The fast path for `digits` that start with a calling code: `None` when the parser
/// is needed (a trunk prefix to strip, a parsing rule that applies).
fn international_fast(digits: &[u8]) -> Option<Result<E164, NormalizeError>> {
    let Some((cc, national)) = split_calling_code(digits) else {
        return Some(Err(NormalizeError::InvalidPhone));
    };
    let info = code_info(cc)?;
    let text = ascii(national);
    if info
        .prefixes
        .iter()
        .any(|p| national.starts_with(p.as_bytes()))
        || info.rules().applies(text)
    {
        return None;
    }
    // The parser would not change anything here; only the length decides.
    Some(if info.possible(national.len()) {
        Digits::from_slice(national).map(|national| E164 { cc, national })
    } else {
        Err(NormalizeError::InvalidPhone)
    })
}

/// `digits` start with a calling code (the `+`/IDD already removed).
fn international(digits: &[u8]) -> Result<E164, NormalizeError> {
    international_fast(digits).unwrap_or_else(|| from_parsed(&parse_slow(None, digits, true)?))
}

/// The fast path for a national number of `region`: `None` when the parser is needed.
fn national_fast(region: &RegionInfo, digits: &[u8]) -> Option<Result<E164, NormalizeError>> {
    if region.rule().is_some_and(|r| r.applies(ascii(digits))) {
        return None;
    }
    // No parsing rule applies: the parser strips the trunk prefix (we leave doubled
    // prefixes to it) and adds the region's calling code.
    let nsn = match region.national_prefix {
        Some(p) => {
            let nsn = digits.strip_prefix(p.as_bytes()).unwrap_or(digits);
            if nsn.starts_with(p.as_bytes()) {
                return None;
            }
            nsn
        }
        None => digits,
    };
    let info = code_info(region.cc)?;
    if !info.possible(nsn.len()) {
        return None;
    }
    Some(Digits::from_slice(nsn).map(|national| E164 {
        cc: region.cc,
        national,
    }))
}

/// True when the parser could only refuse `digits` in `region`: no reading of them,
/// as a national number of `region` or as an international number written without
/// its `+`, has a possible length, and nothing would rewrite them (an international
/// prefix of `region`, a parsing rule, a trunk prefix of the calling code). Whenever
/// the parser could rewrite the digits this answers false and the parser decides.
/// Saves two parses (and loading the parser's database) for numbers such as
/// `619558344429` in `au`: ten national digits where Australia has nine.
fn surely_impossible(region: &RegionInfo, digits: &[u8]) -> bool {
    let text = ascii(digits);
    if let Some(idd) = region.idd() {
        match idd.0.as_ref().map(|r| r.find(text)) {
            None => return false,
            // After the region's international prefix the parser reads the rest as
            // `+…` (unless a 0 follows, which no calling code starts with). It may
            // also apply the region's own parsing rule to what follows (`phonenumber`
            // does, for NANPA regions' 7-digit rules), so that must not match either.
            Some(Some(m)) => {
                let rest = digits.get(m.end()..).unwrap_or(&[]);
                let after_code = split_calling_code(rest).map_or(&[][..], |(_, n)| n);
                let rewrites = |d: &[u8]| {
                    region.rule().is_some_and(|r| r.applies(ascii(d)))
                        || region
                            .national_prefix
                            .is_some_and(|p| d.starts_with(p.as_bytes()))
                };
                return rest.first().is_some_and(|&d| d != b'0')
                    && !rewrites(rest)
                    && !rewrites(after_code)
                    && intl_surely_impossible(rest)
                    && intl_surely_impossible(digits);
            }
            Some(None) => {}
        }
    }
    let Some(info) = code_info(region.cc) else {
        return false;
    };
    // The national readings: the parser may strip what the region's parsing rule
    // matches (a rule that captures rewrites instead: undecidable here), the trunk
    // prefix (`phonenumber` strips a repeated one, `88…` in `tm`, more than once) and
    // leading zeros the region does not keep. The most it can strip is the longest of
    // those steps applied one after another, in any order; every length from that to
    // nothing stripped must be impossible.
    #[derive(Clone, Copy)]
    enum Step {
        Rule,
        Prefix,
        Zeros,
    }
    let strip = |d: &[u8], step: Step| -> Option<usize> {
        Some(match step {
            Step::Rule => match region.rule() {
                None => 0,
                Some(rule) => rule.strip_len(ascii(d)).ok()?.unwrap_or(0),
            },
            Step::Prefix => match region.national_prefix.map(str::as_bytes) {
                None => 0,
                Some(p) => {
                    let mut rest = d;
                    while let Some(r) = rest.strip_prefix(p) {
                        rest = r;
                    }
                    d.len() - rest.len()
                }
            },
            Step::Zeros => d.iter().take_while(|&&b| b == b'0').count(),
        })
    };
    let mut most = 0;
    for order in [
        [Step::Rule, Step::Prefix, Step::Zeros],
        [Step::Prefix, Step::Rule, Step::Zeros],
        [Step::Zeros, Step::Rule, Step::Prefix],
    ] {
        let mut rest = digits;
        for step in order {
            let Some(n) = strip(rest, step) else {
                return false;
            };
            rest = rest.get(n..).unwrap_or(&[]);
        }
        most = most.max(digits.len() - rest.len());
    }
    if (digits.len() - most..=digits.len()).any(|len| info.possible(len)) {
        return false;
    }
    // The international reading (also the parser's "starts with the region's own
    // calling code" reading).
    intl_surely_impossible(digits)
}

/// True when `digits` (after the `+`/IDD) cannot be a number: no calling code, or the
/// fast path refuses them (no trunk prefix or parsing rule of that code applies and
/// the length is impossible) and no leading zero follows the code.
fn intl_surely_impossible(digits: &[u8]) -> bool {
    let zero_after_code =
        split_calling_code(digits).is_some_and(|(_, national)| national.first() == Some(&b'0'));
    !zero_after_code && matches!(international_fast(digits), Some(Err(_)))
}

/// `digits` are in the national format of `region` (or already carry its code).
fn national(region: &RegionInfo, digits: &[u8]) -> Result<E164, NormalizeError> {
    let mut cc_text = [0u8; 5];
    let cc_len = {
        let mut n = region.cc;
        let mut k = cc_text.len();
        while n > 0 && k > 0 {
            k -= 1;
            cc_text[k] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        cc_text.copy_within(k.., 0);
        cc_text.len() - k
    };
    let own_code = cc_text.get(..cc_len).unwrap_or(&[]);
    if digits.starts_with(own_code)
        && let Ok(e) = international(digits)
        && e.cc == region.cc
    {
        return Ok(e);
    }
    if let Some(Ok(e)) = national_fast(region, digits) {
        return Ok(e);
    }
    if surely_impossible(region, digits) {
        return Err(NormalizeError::InvalidPhone);
    }
    parse_slow(Some(region.id), digits, false)
        .and_then(|n| from_parsed(&n))
        // A foreign number written without its `+` (for example one we normalised
        // earlier under another region), accepted only when it is fully valid.
        .or_else(|_| valid_international(digits))
}

/// `digits` (after the `+`/IDD) form a number that passes the full `is_valid` check.
/// Slow (regex matching); used only where a national reading is impossible or the
/// prefix is ambiguous.
fn valid_international(digits: &[u8]) -> Result<E164, NormalizeError> {
    if intl_surely_impossible(digits) {
        return Err(NormalizeError::InvalidPhone);
    }
    let number = parse_slow(None, digits, true)?;
    if number.is_valid() {
        from_parsed(&number)
    } else {
        Err(NormalizeError::InvalidPhone)
    }
}

/// No region known: keep the digits without leading zeros, as both references do.
fn without_region(digits: &[u8]) -> Result<&[u8], NormalizeError> {
    let start = digits
        .iter()
        .position(|&b| b != b'0')
        .unwrap_or(digits.len());
    let rest = digits.get(start..).unwrap_or(&[]);
    if (7..=15).contains(&rest.len()) {
        Ok(rest)
    } else {
        Err(NormalizeError::InvalidPhone)
    }
}

/// E.164 allows at most 15 digits in all.
fn check_e164_len(e: E164) -> Result<E164, NormalizeError> {
    let cc_len = match e.cc {
        0..=9 => 1,
        10..=99 => 2,
        _ => 3,
    };
    if cc_len + e.national.len <= 15 {
        Ok(e)
    } else {
        Err(NormalizeError::InvalidPhone)
    }
}

fn write_e164(e: &E164, out: &mut String) {
    out.clear();
    let _ = write!(out, "{}", e.cc);
    out.push_str(e.national.as_str());
}

/// Normalise a phone number into `out` (cleared first) as E.164 digits without `+`.
///
/// `region` is the event's country or the configured default; without one, national
/// numbers keep their digits (see the module docs).
pub fn normalize_phone(
    input: &str,
    region: Option<CountryCode>,
    out: &mut String,
) -> Result<(), NormalizeError> {
    out.clear();
    let value = trim(input);
    if value.is_empty() {
        return Ok(());
    }
    let scanned = scan(value)?;
    if scanned.digits.len == 0 {
        return Err(NormalizeError::InvalidPhone);
    }
    let all = scanned.digits.as_bytes();
    let region = region.and_then(region_info);

    // The digits after an international prefix of `idd` digits, without the (0) trunk.
    let after_idd = |idd: usize| -> Result<Digits, NormalizeError> {
        let mut d = Digits::new();
        for (i, &b) in all.iter().enumerate().skip(idd) {
            if scanned.trunk_at == Some(i) && i > idd {
                continue;
            }
            d.push(b)?;
        }
        Ok(d)
    };

    let e164 = if scanned.plus {
        international(after_idd(0)?.as_bytes())?
    } else if all.starts_with(b"00") {
        match (international(after_idd(2)?.as_bytes()), region) {
            (Ok(e), _) => e,
            (Err(_), Some(r)) => national(r, all)?,
            (Err(e), None) => return Err(e),
        }
    } else if all.starts_with(b"011") && region.is_none_or(|r| r.cc == 1) {
        let rest = after_idd(3)?;
        let intl = match region {
            Some(_) => international(rest.as_bytes()).ok(),
            // No region: only when it really is a valid international number.
            None => valid_international(rest.as_bytes()).ok(),
        };
        match (intl, region) {
            (Some(e), _) => e,
            (None, Some(r)) => national(r, all)?,
            (None, None) => {
                out.push_str(std::str::from_utf8(without_region(all)?).unwrap_or(""));
                return Ok(());
            }
        }
    } else if let Some(r) = region {
        national(r, all)?
    } else {
        out.push_str(std::str::from_utf8(without_region(all)?).unwrap_or(""));
        return Ok(());
    };
    write_e164(&check_e164_len(e164)?, out);
    Ok(())
}

/// Build the fast paths' tables and compile the rules the common formats need, so
/// that the first requests do not pay for it. Does not load the parser's database.
pub(crate) fn warm_up() {
    LazyLock::force(&TABLES);
    let mut out = String::new();
    for (number, region) in [
        ("+1 650 555 1212", None),
        ("(650) 555-1212", Some(CountryCode::US)),
        ("+44 20 7946 0958", None),
        ("+49 (0)171 1234567", None),
    ] {
        let _ = normalize_phone(number, region, &mut out);
    }
}

/// Load the parser's database now rather than on the first number that needs it.
pub(crate) fn warm_up_parser() {
    let _ = parse_slow(Some(Id::DE), b"01711234567", false);
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonenumber::metadata::DATABASE;

    fn ph(s: &str, region: Option<&str>) -> Result<String, NormalizeError> {
        let mut out = String::new();
        let region = region.and_then(CountryCode::from_alpha2);
        normalize_phone(s, region, &mut out).map(|()| out)
    }

    #[test]
    fn international_forms() {
        for (input, want) in [
            ("+1 (650) 555-1212", "16505551212"),
            ("+49 (0)171 1234567", "491711234567"),
            ("+49 ( 0 ) 171 1234567", "491711234567"),
            ("+49 0171 1234567", "491711234567"),
            ("0049 171 1234567", "491711234567"),
            ("0049 (0)171 1234567", "491711234567"),
            ("+44 (0)20 7946 0958", "442079460958"),
            ("011 44 20 7946 0958", "442079460958"),
            ("+39 06 1234 5678", "390612345678"),
            ("tel:+16505551212", "16505551212"),
            ("tel:+1-650-555-1212;ext=22", "16505551212"),
            ("+1 650 555 1212 ext. 123", "16505551212"),
            ("+1 650 555 1212 x123", "16505551212"),
            ("+1 650 555 1212 #123", "16505551212"),
            ("+880 1712-345678", "8801712345678"),
            ("\u{a0}+16505551212", "16505551212"),
        ] {
            assert_eq!(ph(input, None).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn national_forms() {
        for (input, region, want) in [
            ("(650)555-1212", Some("us"), "16505551212"),
            ("16505551212", Some("us"), "16505551212"),
            ("0171 1234567", Some("de"), "491711234567"),
            ("491711234567", Some("de"), "491711234567"),
            ("020 7946 0958", Some("gb"), "442079460958"),
            ("06 12 34 56 78", Some("fr"), "33612345678"),
            ("011 44 20 7946 0958", Some("us"), "442079460958"),
            ("0049 171 1234567", Some("us"), "491711234567"),
            ("+49 171 1234567", Some("us"), "491711234567"),
            ("06 1234 5678", Some("it"), "390612345678"),
            ("(650)555-1212", None, "6505551212"),
            ("0171 1234567", None, "1711234567"),
            ("650.555.1212", None, "6505551212"),
        ] {
            assert_eq!(ph(input, region).as_deref(), Ok(want), "{input} {region:?}");
        }
    }

    #[test]
    fn refusals() {
        for (input, region) in [
            ("1-800-FLOWERS", None),
            ("12345", None),
            ("+999 1234567", None),
            ("+1 555", None),
            ("555 1234", Some("us")),
            ("---", None),
            ("+", None),
            ("1+2", None),
            ("phone: 123", None),
            ("+1 650 555 1212 ext", None),
            ("00 12345", None),
            ("1234567890123456789012345678", None),
            // Found by the idempotence property: would become `4900001`.
            ("0000001", Some("de")),
        ] {
            assert_eq!(
                ph(input, region),
                Err(NormalizeError::InvalidPhone),
                "{input}"
            );
        }
        assert_eq!(ph("  ", None).as_deref(), Ok(""));
    }

    fn render(r: Result<E164, NormalizeError>) -> Result<String, NormalizeError> {
        r.map(|e| {
            let mut out = String::new();
            write_e164(&e, &mut out);
            out
        })
    }

    /// The fast paths must agree with the parser wherever they apply: checked on the
    /// example numbers of every region in the metadata, international and national.
    #[test]
    fn fast_paths_agree_with_parser_on_metadata_examples() {
        let (mut fast_intl, mut fast_nat, mut total) = (0, 0, 0);
        for meta in DATABASE.iter() {
            let d = meta.descriptors();
            for desc in [d.fixed_line(), d.mobile(), d.voip(), d.personal_number()]
                .into_iter()
                .flatten()
            {
                let Some(example) = desc.example() else {
                    continue;
                };
                total += 1;
                let intl = format!("{}{example}", meta.country_code());
                if let Some(fast) = international_fast(intl.as_bytes()) {
                    fast_intl += 1;
                    let slow =
                        parse_slow(None, intl.as_bytes(), true).and_then(|n| from_parsed(&n));
                    assert_eq!(render(fast), render(slow), "+{intl} ({})", meta.id());
                }
                let Some(region) = CountryCode::from_alpha2(meta.id()).and_then(region_info) else {
                    continue;
                };
                let nat = format!("{}{example}", region.national_prefix.unwrap_or(""));
                if let Some(fast) = national_fast(region, nat.as_bytes()) {
                    fast_nat += 1;
                    let slow = parse_slow(Some(region.id), nat.as_bytes(), false)
                        .and_then(|n| from_parsed(&n));
                    assert_eq!(render(fast), render(slow), "{nat} in {}", meta.id());
                }
            }
        }
        eprintln!(
            "{total} examples: {fast_intl} international and {fast_nat} national on the fast path"
        );
        assert!(
            fast_intl * 2 > total && fast_nat * 2 > total,
            "fast paths should cover most numbers"
        );
    }

    #[test]
    fn build_time_table_matches_linked_metadata() {
        let (codes, regions) = crate::phone_meta::collect(&DATABASE);
        assert_eq!(
            crate::phone_meta::render(&codes, &regions),
            include_str!(concat!(env!("OUT_DIR"), "/phone_tables.rs"))
        );
    }

    /// The parser's verdict on `digits` in `region`, as `national` would reach it
    /// without the fast refusal: the national reading, then the international one.
    fn parser_verdict(region: &RegionInfo, digits: &[u8]) -> Result<E164, NormalizeError> {
        parse_slow(Some(region.id), digits, false)
            .and_then(|n| from_parsed(&n))
            .or_else(|_| {
                let number = parse_slow(None, digits, true)?;
                if number.is_valid() {
                    from_parsed(&number)
                } else {
                    Err(NormalizeError::InvalidPhone)
                }
            })
    }

    /// The fast refusal never refuses a number the parser would accept: every region,
    /// its example numbers with and without trunk prefix, calling code and
    /// international prefixes, one digit more or less, and seeded random digit strings.
    #[test]
    fn fast_refusal_only_refuses_what_the_parser_refuses() {
        let mut seed = 0x9e37_79b9_u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let (mut checked, mut refused) = (0, 0);
        for meta in DATABASE.iter() {
            let Some(region) = CountryCode::from_alpha2(meta.id()).and_then(region_info) else {
                continue;
            };
            let d = meta.descriptors();
            let examples: Vec<&str> = [d.fixed_line(), d.mobile(), d.voip(), d.toll_free()]
                .into_iter()
                .flatten()
                .filter_map(|desc| desc.example())
                .collect();
            let cc = region.cc.to_string();
            let trunk = region.national_prefix.unwrap_or("");
            let mut inputs = Vec::new();
            for ex in &examples {
                let (idd_cc, zero_cc) = (format!("00{cc}"), format!("0{cc}"));
                for head in [
                    "", trunk, &cc, "00", "011", "0011", "8", "810", &idd_cc, &zero_cc,
                ] {
                    inputs.push(format!("{head}{ex}"));
                    inputs.push(format!("{head}{ex}{}", next() % 10));
                    inputs.push(format!("{head}{}", &ex[..ex.len() - 1]));
                }
            }
            for _ in 0..150 {
                let len = 4 + (next() % 14) as usize;
                let idd_cc = format!("00{cc}");
                let heads = ["", trunk, &cc, "0", "00", "011", "0011", "810", &idd_cc];
                let head = heads[next() as usize % heads.len()];
                let tail: String = (0..len)
                    .map(|_| char::from(b'0' + (next() % 10) as u8))
                    .collect();
                inputs.push(format!("{head}{tail}"));
            }
            for input in inputs {
                if input.len() > MAX_DIGITS {
                    continue;
                }
                checked += 1;
                if surely_impossible(region, input.as_bytes()) {
                    refused += 1;
                    assert_eq!(
                        render(parser_verdict(region, input.as_bytes())),
                        Err(NormalizeError::InvalidPhone),
                        "{input} in {} was refused without the parser",
                        meta.id()
                    );
                }
            }
        }
        eprintln!("{checked} inputs, {refused} refused without the parser");
        assert!(
            refused * 10 > checked,
            "the fast refusal should apply often"
        );
        let au = CountryCode::from_alpha2("au")
            .and_then(region_info)
            .unwrap();
        assert!(surely_impossible(au, b"619558344429"));
    }

    /// Every rule compiles (so none silently sends all its numbers to the parser),
    /// and the ASCII-only automata answer like Unicode-mode ones on digit strings:
    /// each rule against every metadata example number, with and without the trunk
    /// prefix, and every prefix of them.
    #[test]
    fn rules_compile_and_ascii_mode_agrees_with_unicode_mode() {
        let mut haystacks: Vec<String> = Vec::new();
        for meta in DATABASE.iter() {
            let d = meta.descriptors();
            for desc in [d.fixed_line(), d.mobile(), d.voip(), d.personal_number()]
                .into_iter()
                .flatten()
            {
                if let Some(example) = desc.example() {
                    let prefix = meta.national_prefix().unwrap_or("");
                    let full = format!("{prefix}{example}");
                    haystacks.extend((1..=full.len()).map(|n| full[..n].to_owned()));
                    haystacks.push(example.to_owned());
                }
            }
        }
        for code in TABLES.codes.iter().flatten() {
            let set = code.rules().0.as_ref().expect("rule set compiles");
            let unicode =
                RegexSetBuilder::new(code.rule_sources.iter().map(|s| format!("^(?:{s})")))
                    .ignore_whitespace(true)
                    .build()
                    .expect("compiles in Unicode mode");
            for h in &haystacks {
                assert_eq!(
                    set.matches(h).into_iter().collect::<Vec<_>>(),
                    unicode.matches(h).into_iter().collect::<Vec<_>>(),
                    "{h}"
                );
            }
        }
        for region in TABLES.regions.iter().flatten() {
            let Some(source) = region.rule_source else {
                continue;
            };
            let rule = region
                .rule()
                .and_then(|r| r.0.as_ref())
                .expect("rule compiles");
            let unicode = RegexBuilder::new(&format!("^(?:{source})"))
                .ignore_whitespace(true)
                .build()
                .expect("compiles in Unicode mode");
            for h in &haystacks {
                assert_eq!(
                    rule.find(h).map(|m| m.range()),
                    unicode.find(h).map(|m| m.range()),
                    "{h}"
                );
            }
        }
    }
}
