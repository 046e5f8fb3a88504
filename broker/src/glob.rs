//! Redis glob matching, shared by KEYS/SCAN and pub/sub patterns (a leaf: no crate imports).

/// Redis glob matching (`*`, `?`, `[a-z]`, `[^x]`, `\` escapes), as used by KEYS and SCAN.
pub fn glob_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    fn eq(a: u8, b: u8, nocase: bool) -> bool {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    }
    let (mut p, mut i) = (0usize, 0usize);
    // Backtracking point for the last `*`.
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        let mut matched = false;
        let mut next_p = p;
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, i));
                    continue;
                }
                b'?' => {
                    matched = true;
                    next_p = p + 1;
                }
                b'[' => {
                    let mut j = p + 1;
                    let not = j < pattern.len() && pattern[j] == b'^';
                    if not {
                        j += 1;
                    }
                    let mut hit = false;
                    loop {
                        if j >= pattern.len() {
                            // Unterminated class: Redis treats the end as the close.
                            break;
                        }
                        if pattern[j] == b'\\' && j + 1 < pattern.len() {
                            j += 1;
                            if eq(pattern[j], s[i], nocase) {
                                hit = true;
                            }
                        } else if pattern[j] == b']' {
                            break;
                        } else if j + 2 < pattern.len() && pattern[j + 1] == b'-' {
                            let (mut lo, mut hi) = (pattern[j], pattern[j + 2]);
                            if lo > hi {
                                std::mem::swap(&mut lo, &mut hi);
                            }
                            let c = s[i];
                            let in_range = if nocase {
                                let c = c.to_ascii_lowercase();
                                c >= lo.to_ascii_lowercase() && c <= hi.to_ascii_lowercase()
                            } else {
                                c >= lo && c <= hi
                            };
                            if in_range {
                                hit = true;
                            }
                            j += 2;
                        } else if eq(pattern[j], s[i], nocase) {
                            hit = true;
                        }
                        j += 1;
                    }
                    matched = hit != not;
                    next_p = j + 1;
                }
                b'\\' if p + 1 < pattern.len() => {
                    matched = eq(pattern[p + 1], s[i], nocase);
                    next_p = p + 2;
                }
                c => {
                    matched = eq(c, s[i], nocase);
                    next_p = p + 1;
                }
            }
        }
        if matched {
            p = next_p;
            i += 1;
        } else if let Some((sp, si)) = star {
            p = sp;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}
