//! Kubernetes resource quantities (`resource.Quantity` of k8s.io/apimachinery): parsing,
//! canonical formatting and exact arithmetic.
//!
//! Written here rather than taken from a crate because skiff must print exactly the strings the
//! API server prints (`1088Mi`, `1100m`, `1536`), round exactly as it rounds (to nano on parse,
//! up to milli on defaulting) and keep the suffix family of the operand the way Go's `Add` does.
//! Values are exact: an arbitrary-precision mantissa times a power of ten.

use std::cmp::Ordering;
use std::fmt;

use num_bigint::{BigInt, Sign};
use num_integer::Integer;
use num_traits::{One, Signed, ToPrimitive, Zero};

/// The suffix family a quantity was written in; canonical output keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `m`, ``, `k`, `M`, … (powers of 1000).
    DecimalSI,
    /// `Ki`, `Mi`, `Gi`, … (powers of 1024).
    BinarySI,
    /// `e3`, `E-6`, … (explicit power of ten).
    DecimalExponent,
}

/// Why a string is not a quantity; texts are apimachinery's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    FormatWrong,
    #[error("unable to parse numeric part of quantity")]
    Numeric,
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

/// Largest exponent magnitude accepted in `e`/`E` notation. apimachinery takes any int32, but
/// values this far out only arise from fuzzing and would make exact comparison unbounded.
const MAX_EXPONENT: i64 = 10_000;

/// Scale (power of ten) of one nano; parsing rounds up to it.
const NANO: i32 = -9;
/// Scale of one milli; defaulting rounds resource quantities up to it (SEMANTICS D6).
pub const MILLI: i32 = -3;

/// An exact quantity: `mantissa × 10^exp`, normalised so that the mantissa has no trailing
/// decimal zero (zero is `0 × 10^0`).
#[derive(Clone, Debug)]
pub struct Quantity {
    mantissa: BigInt,
    exp: i32,
    format: Format,
}

fn pow10(n: u32) -> BigInt {
    num_traits::pow(BigInt::from(10u8), n as usize)
}

fn max_allowed() -> BigInt {
    BigInt::from(i64::MAX)
}

impl Quantity {
    fn normalised(mut mantissa: BigInt, mut exp: i32, format: Format) -> Self {
        if mantissa.is_zero() {
            return Quantity {
                mantissa,
                exp: 0,
                format,
            };
        }
        let ten = BigInt::from(10u8);
        loop {
            let (q, r) = mantissa.div_rem(&ten);
            if !r.is_zero() {
                break;
            }
            mantissa = q;
            exp += 1;
        }
        Quantity {
            mantissa,
            exp,
            format,
        }
    }

    /// Zero in the given format.
    pub fn zero(format: Format) -> Self {
        Quantity {
            mantissa: BigInt::zero(),
            exp: 0,
            format,
        }
    }

    /// `value × 10^scale` in the given format.
    pub fn new(value: i64, scale: i32, format: Format) -> Self {
        Self::normalised(BigInt::from(value), scale, format)
    }

    /// Parses a quantity the way `resource.ParseQuantity` does: exact value, rounded away from
    /// zero to nano precision, magnitude capped at 2^63-1 for SI suffixes.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        if s.is_empty() {
            return Err(QuantityError::FormatWrong);
        }
        let parts = split(s)?;
        let (base, exponent, format) = interpret_suffix(parts.suffix)?;

        let digits = format!("{}{}", parts.num, parts.denom);
        let mut mantissa: BigInt = digits.parse().map_err(|_| QuantityError::Numeric)?;
        let denom_len = i32::try_from(parts.denom.len()).map_err(|_| QuantityError::Numeric)?;
        let mut exp = -denom_len;
        match base {
            Base::Ten => exp = exp.checked_add(exponent).ok_or(QuantityError::Numeric)?,
            Base::Two => mantissa <<= exponent as usize,
        }
        if !parts.positive {
            mantissa = -mantissa;
        }
        let mut q = Self::normalised(mantissa, exp, format);
        q.round_up_to(NANO);
        if matches!(format, Format::DecimalSI | Format::BinarySI)
            && q.abs_cmp_int(&max_allowed()) == Ordering::Greater
        {
            let capped = if q.mantissa.is_negative() {
                -max_allowed()
            } else {
                max_allowed()
            };
            q = Self::normalised(capped, 0, format);
        }
        Ok(q)
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn is_zero(&self) -> bool {
        self.mantissa.is_zero()
    }

    pub fn is_negative(&self) -> bool {
        self.mantissa.is_negative()
    }

    /// Rounds away from zero so that no digit below `10^scale` remains (`RoundUp`).
    pub fn round_up_to(&mut self, scale: i32) {
        if self.exp >= scale {
            return;
        }
        let shift = (scale - self.exp) as u32;
        let divisor = pow10(shift);
        let (q, r) = self.mantissa.div_rem(&divisor);
        let q = if r.is_zero() {
            q
        } else if self.mantissa.is_negative() {
            q - 1
        } else {
            q + 1
        };
        *self = Self::normalised(q, scale, self.format);
    }

    /// Compares the magnitude with an integer magnitude.
    fn abs_cmp_int(&self, other: &BigInt) -> Ordering {
        let me = Quantity {
            mantissa: self.mantissa.abs(),
            exp: self.exp,
            format: self.format,
        };
        me.cmp(&Quantity::normalised(other.abs(), 0, Format::DecimalSI))
    }

    /// The value scaled to `10^scale` units, rounded away from zero (Go `ScaledValue`),
    /// saturating at the i64 range.
    pub fn scaled_value(&self, scale: i32) -> i64 {
        let mut q = self.clone();
        q.round_up_to(scale);
        let units = if q.exp >= scale {
            match u32::try_from(i64::from(q.exp) - i64::from(scale)) {
                Ok(shift) if shift <= 40 => q.mantissa * pow10(shift),
                _ => {
                    return if q.mantissa.is_negative() {
                        i64::MIN
                    } else {
                        i64::MAX
                    }
                }
            }
        } else {
            q.mantissa
        };
        units.to_i64().unwrap_or(if units.is_negative() {
            i64::MIN
        } else {
            i64::MAX
        })
    }

    /// Whole base units, rounded up (`Value`).
    pub fn value(&self) -> i64 {
        self.scaled_value(0)
    }

    /// Thousandths of a unit, rounded up (`MilliValue`); cpu is counted in these.
    pub fn milli_value(&self) -> i64 {
        self.scaled_value(MILLI)
    }

    /// Adds `other`, keeping this quantity's format unless this one is zero (Go `Add`).
    pub fn add(&mut self, other: &Quantity) {
        let format = if self.is_zero() {
            other.format
        } else {
            self.format
        };
        let exp = self.exp.min(other.exp);
        let a = &self.mantissa * pow10((self.exp - exp) as u32);
        let b = &other.mantissa * pow10((other.exp - exp) as u32);
        *self = Self::normalised(a + b, exp, format);
    }

    /// Subtracts `other`, keeping this quantity's format unless this one is zero (Go `Sub`).
    pub fn sub(&mut self, other: &Quantity) {
        let neg = Quantity {
            mantissa: -other.mantissa.clone(),
            exp: other.exp,
            format: other.format,
        };
        self.add(&neg);
    }

    /// The canonical text, as `Quantity.String()` prints it.
    pub fn to_canonical(&self) -> String {
        if self.is_zero() {
            return "0".to_string();
        }
        let mut format = self.format;
        let mut whole: Option<BigInt> = None;
        if format == Format::BinarySI {
            let small = self.abs_cmp_int(&BigInt::from(1024)) == Ordering::Less;
            if small || self.exp < 0 {
                // Values below 1Ki and fractional values are shown in decimal so that nothing
                // is rounded.
                format = Format::DecimalSI;
            } else {
                whole = Some(&self.mantissa * pow10(self.exp as u32));
            }
        }
        match (format, whole) {
            (Format::BinarySI, Some(mut amount)) => {
                let kibi = BigInt::from(1024);
                let mut times = 0usize;
                while amount.abs() >= kibi {
                    let (q, r) = amount.div_rem(&kibi);
                    if !r.is_zero() {
                        break;
                    }
                    amount = q;
                    times += 1;
                }
                const BIN: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
                match BIN.get(times) {
                    Some(suffix) => format!("{amount}{suffix}"),
                    // Beyond Ei there is no binary suffix; fall back to exact decimal.
                    None => self.decimal_text(Format::DecimalSI),
                }
            }
            (f, _) => self.decimal_text(f),
        }
    }

    fn decimal_text(&self, format: Format) -> String {
        // Mantissa without trailing zeros, then lower the exponent to a multiple of three.
        let mut amount = self.mantissa.clone();
        let mut exp = self.exp;
        while exp.rem_euclid(3) != 0 {
            amount *= 10;
            exp -= 1;
        }
        let suffix = match (format, exp) {
            (Format::DecimalExponent, 0) => String::new(),
            (Format::DecimalExponent, e) => format!("e{e}"),
            (_, -9) => "n".into(),
            (_, -6) => "u".into(),
            (_, -3) => "m".into(),
            (_, 0) => String::new(),
            (_, 3) => "k".into(),
            (_, 6) => "M".into(),
            (_, 9) => "G".into(),
            (_, 12) => "T".into(),
            (_, 15) => "P".into(),
            (_, 18) => "E".into(),
            (_, e) => format!("e{e}"),
        };
        format!("{amount}{suffix}")
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Numeric order; the format does not take part.
impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        let (sa, sb) = (self.mantissa.sign(), other.mantissa.sign());
        if sa != sb || sa == Sign::NoSign {
            return sa.cmp(&sb);
        }
        // Same sign, both non-zero: compare magnitudes by order of magnitude first so that
        // widely different exponents never need aligning.
        let mag = |q: &Quantity| q.mantissa.abs().to_string().len() as i64 + i64::from(q.exp);
        let (ma, mb) = (mag(self), mag(other));
        let abs_order = if ma != mb {
            ma.cmp(&mb)
        } else {
            let exp = self.exp.min(other.exp);
            let a = self.mantissa.abs() * pow10((self.exp - exp) as u32);
            let b = other.mantissa.abs() * pow10((other.exp - exp) as u32);
            a.cmp(&b)
        };
        if sa == Sign::Minus {
            abs_order.reverse()
        } else {
            abs_order
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_canonical())
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

enum Base {
    Ten,
    Two,
}

struct Parts<'a> {
    positive: bool,
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

/// Splits `[+-]digits[.digits]suffix` as apimachinery's `parseQuantityString` does, including
/// its leniencies (`.`, `1.`, `.5` are numbers).
fn split(s: &str) -> Result<Parts<'_>, QuantityError> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    match b.first() {
        Some(b'-') => {
            positive = false;
            pos += 1;
        }
        Some(b'+') => pos += 1,
        _ => {}
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Ok(Parts {
            positive,
            num: "0",
            denom: "",
            suffix: "",
        });
    }
    let num_start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = if pos == num_start {
        "0"
    } else {
        &s[num_start..pos]
    };
    let mut denom = "";
    if pos < end && b[pos] == b'.' {
        pos += 1;
        let d_start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[d_start..pos];
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return Err(QuantityError::FormatWrong);
    }
    Ok(Parts {
        positive,
        num,
        denom,
        suffix: &s[suffix_start..],
    })
}

fn interpret_suffix(suffix: &str) -> Result<(Base, i32, Format), QuantityError> {
    let dec = |e| Ok((Base::Ten, e, Format::DecimalSI));
    let bin = |e| Ok((Base::Two, e, Format::BinarySI));
    match suffix {
        "" => dec(0),
        "n" => dec(-9),
        "u" => dec(-6),
        "m" => dec(-3),
        "k" => dec(3),
        "M" => dec(6),
        "G" => dec(9),
        "T" => dec(12),
        "P" => dec(15),
        "E" => dec(18),
        "Ki" => bin(10),
        "Mi" => bin(20),
        "Gi" => bin(30),
        "Ti" => bin(40),
        "Pi" => bin(50),
        "Ei" => bin(60),
        s if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => {
            let e: i64 = s[1..].parse().map_err(|_| QuantityError::Suffix)?;
            if e.abs() > MAX_EXPONENT {
                return Err(QuantityError::Suffix);
            }
            Ok((Base::Ten, e as i32, Format::DecimalExponent))
        }
        _ => Err(QuantityError::Suffix),
    }
}

impl Default for Quantity {
    fn default() -> Self {
        Quantity::zero(Format::DecimalSI)
    }
}

impl Quantity {
    /// True when the value is a whole number of base units.
    pub fn is_integral(&self) -> bool {
        self.exp >= 0 || self.mantissa.is_zero()
    }

    /// `1` in DecimalSI; handy in tests and arithmetic.
    pub fn one() -> Self {
        Self::normalised(BigInt::one(), 0, Format::DecimalSI)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn canon(s: &str) -> String {
        match Quantity::parse(s) {
            Ok(q) => q.to_canonical(),
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn canonical_forms_match_apimachinery() {
        let cases = [
            ("0", "0"),
            ("0Mi", "0"),
            ("1", "1"),
            ("1000m", "1"),
            ("1100m", "1100m"),
            ("1.5", "1500m"),
            ("1.5Gi", "1536Mi"),
            ("1024Ki", "1Mi"),
            ("1000Ki", "1000Ki"),
            ("1536", "1536"),
            ("1000000", "1M"),
            ("1500", "1500"),
            ("2000", "2k"),
            ("100k", "100k"),
            ("1e3", "1e3"),
            ("12e3", "12e3"),
            ("1000e3", "1e6"),
            ("1E", "1E"),
            ("0.0001", "100u"),
            ("0.1m", "100u"),
            ("1n", "1n"),
            ("0.0000000001", "1n"),
            ("-1", "-1"),
            ("-1.5Gi", "-1536Mi"),
            ("+5", "5"),
            (".5", "500m"),
            ("5.", "5"),
            (".", "0"),
            ("512Mi", "512Mi"),
            ("0.5Ki", "512"),
            ("100Mi", "100Mi"),
            ("1Ki", "1Ki"),
            ("1023", "1023"),
            ("8Ei", "9223372036854775807"),
            ("100E", "9223372036854775807"),
            ("1e30", "1e30"),
            // apimachinery is lenient here: an empty number is zero.
            ("e3", "0"),
        ];
        for (input, want) in cases {
            assert_eq!(canon(input), want, "input {input}");
        }
    }

    #[test]
    fn malformed_quantities_are_rejected_with_apimachinery_text() {
        for bad in [
            "", "abc", "1 ", " 1", "1.2.3", "1Kb", "1e", "--1", "1ki", "1K", "1e99999",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            Quantity::parse("abc").unwrap_err().to_string(),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
        assert_eq!(
            Quantity::parse("1Kb").unwrap_err(),
            QuantityError::FormatWrong
        );
        assert_eq!(Quantity::parse("1ki").unwrap_err(), QuantityError::Suffix);
    }

    #[test]
    fn d6_round_up_to_milli() {
        let mut q = Quantity::parse("0.0001").unwrap_or_default();
        q.round_up_to(MILLI);
        assert_eq!(q.to_canonical(), "1m");
        let mut q = Quantity::parse("1.0001").unwrap_or_default();
        q.round_up_to(MILLI);
        assert_eq!(q.to_canonical(), "1001m");
        let mut q = Quantity::parse("-0.0001").unwrap_or_default();
        q.round_up_to(MILLI);
        assert_eq!(q.to_canonical(), "-1m");
    }

    #[test]
    fn add_keeps_receiver_format_unless_zero() {
        let mut a = Quantity::parse("1Gi").unwrap_or_default();
        a.add(&Quantity::parse("64Mi").unwrap_or_default());
        assert_eq!(a.to_canonical(), "1088Mi");
        let mut z = Quantity::zero(Format::DecimalSI);
        z.add(&Quantity::parse("1Gi").unwrap_or_default());
        assert_eq!(z.to_canonical(), "1Gi");
        let mut d = Quantity::parse("5").unwrap_or_default();
        d.add(&Quantity::parse("1Ki").unwrap_or_default());
        assert_eq!(d.to_canonical(), "1029");
    }

    #[test]
    fn values_round_up() {
        let q = Quantity::parse("1500u").unwrap_or_default();
        assert_eq!(q.milli_value(), 2);
        assert_eq!(q.value(), 1);
        assert_eq!(Quantity::parse("1Gi").unwrap_or_default().value(), 1 << 30);
        assert_eq!(
            Quantity::parse("1e30").unwrap_or_default().value(),
            i64::MAX
        );
    }

    #[test]
    fn ordering_is_numeric() {
        let q = |s: &str| Quantity::parse(s).unwrap_or_default();
        assert!(q("1Gi") > q("1G"));
        assert!(q("1100m") > q("1"));
        assert!(q("-1") < q("0"));
        assert!(q("-2") < q("-1"));
        assert_eq!(q("1k"), q("1000"));
        assert!(q("1e30") > q("8Ei"));
    }

    fn quantity_text() -> impl Strategy<Value = String> {
        let suffix = prop::sample::select(vec![
            "", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
            "e3", "e-3", "E6", "e0",
        ]);
        (
            "[+-]?",
            "[0-9]{0,12}",
            prop::option::of("[0-9]{0,12}"),
            suffix,
        )
            .prop_map(|(sign, int, frac, suffix)| {
                let int = if int.is_empty() && frac.as_deref().is_none_or(str::is_empty) {
                    "0".to_string()
                } else {
                    int
                };
                match frac {
                    Some(f) => format!("{sign}{int}.{f}{suffix}"),
                    None => format!("{sign}{int}{suffix}"),
                }
            })
    }

    proptest! {
        #[test]
        fn parse_format_parse_is_stable(text in quantity_text()) {
            let q = Quantity::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            let canonical = q.to_canonical();
            let again = Quantity::parse(&canonical).map_err(|e| TestCaseError::fail(format!("{canonical}: {e}")))?;
            prop_assert_eq!(&again, &q, "{} -> {}", text, canonical);
            prop_assert_eq!(again.to_canonical(), canonical);
        }

        #[test]
        fn arbitrary_strings_never_panic(text in ".{0,40}") {
            if let Ok(q) = Quantity::parse(&text) {
                let _ = q.to_canonical();
                let _ = q.milli_value();
            }
        }

        #[test]
        fn addition_is_exact(a in -1_000_000i64..1_000_000, b in -1_000_000i64..1_000_000) {
            let mut qa = Quantity::new(a, MILLI, Format::DecimalSI);
            qa.add(&Quantity::new(b, MILLI, Format::DecimalSI));
            prop_assert_eq!(qa.milli_value(), a + b);
        }
    }
}
