//! Kubernetes resource quantities (`500m`, `1.5Gi`, `2e3`) parsed to an exact value, so that
//! quantities the API server rewrote to canonical form still compare equal.

/// The exact value of a quantity, in units of 10^-9 (nano), or `None` when it is not one.
///
/// Exact for every quantity Kubernetes accepts with at most nine fractional digits and a value
/// under 10^29; outside that, `None` (and the caller falls back to comparing the text).
pub fn parse(s: &str) -> Option<i128> {
    let s = s.trim();
    let (sign, s) = match s.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(end);
    if number.is_empty() || number == "." {
        return None;
    }
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if frac.len() > 9 || frac.contains('.') {
        return None;
    }
    let mut nanos: i128 = 0;
    for c in int.chars().chain(frac.chars()) {
        nanos = nanos
            .checked_mul(10)?
            .checked_add(i128::from(c.to_digit(10)?))?;
    }
    nanos = nanos.checked_mul(10i128.checked_pow(9 - frac.len() as u32)?)?;
    let scaled = match suffix {
        "" => nanos,
        "n" => nanos
            .checked_div(1_000_000_000)
            .filter(|_| nanos % 1_000_000_000 == 0)?,
        "u" => nanos
            .checked_div(1_000_000)
            .filter(|_| nanos % 1_000_000 == 0)?,
        "m" => nanos.checked_div(1_000).filter(|_| nanos % 1_000 == 0)?,
        "k" => nanos.checked_mul(1_000)?,
        "M" => nanos.checked_mul(1_000_000)?,
        "G" => nanos.checked_mul(1_000_000_000)?,
        "T" => nanos.checked_mul(10i128.pow(12))?,
        "P" => nanos.checked_mul(10i128.pow(15))?,
        "E" => nanos.checked_mul(10i128.pow(18))?,
        "Ki" => nanos.checked_mul(1 << 10)?,
        "Mi" => nanos.checked_mul(1 << 20)?,
        "Gi" => nanos.checked_mul(1 << 30)?,
        "Ti" => nanos.checked_mul(1 << 40)?,
        "Pi" => nanos.checked_mul(1 << 50)?,
        "Ei" => nanos.checked_mul(1 << 60)?,
        exp => {
            let e: i32 = exp.strip_prefix(['e', 'E'])?.parse().ok()?;
            if e >= 0 {
                nanos.checked_mul(10i128.checked_pow(e as u32)?)?
            } else {
                let div = 10i128.checked_pow(e.unsigned_abs())?;
                nanos.checked_div(div).filter(|_| nanos % div == 0)?
            }
        }
    };
    Some(sign * scaled)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn decimal_and_binary_suffixes() {
        assert_eq!(parse("1"), Some(1_000_000_000));
        assert_eq!(parse("500m"), parse("0.5"));
        assert_eq!(parse("1Gi"), parse("1024Mi"));
        assert_eq!(parse("1k"), parse("1e3"));
        assert_eq!(parse("1.5"), parse("1500m"));
        assert_eq!(parse("-2"), Some(-2_000_000_000));
        assert!(parse("1Gi") > parse("1G"));
    }

    #[test]
    fn rejects_what_is_not_a_quantity() {
        for bad in ["", "abc", "1x", ".", "1..2", "1.0000000001", "m"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
