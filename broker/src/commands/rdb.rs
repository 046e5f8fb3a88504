//! The byte codecs of Redis's RDB format that DUMP and RESTORE use: the CRC-64 (Jones) that
//! checks a payload, and LZF, which compresses its long strings.

// ---- CRC-64 (Jones polynomial, reflected), as Redis checks its RDB payloads ----

const fn crc64_table() -> [u64; 256] {
    // 0xad93d23594c935a9 with its bits reversed.
    const POLY: u64 = 0x95ac_9329_ac4b_c9b5;
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ POLY } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static CRC64: [u64; 256] = crc64_table();

/// CRC-64/Jones as Redis seals DUMP payloads (reflected, table-driven, no final xor).
pub fn crc64(data: &[u8]) -> u64 {
    data.iter().fold(0u64, |crc, &b| {
        CRC64[((crc ^ u64::from(b)) & 0xff) as usize] ^ (crc >> 8)
    })
}

// ---- LZF ----

/// LZF-compresses `input` into at most `limit` bytes (liblzf's algorithm with Redis's
/// settings: 16-bit hash, "very fast" re-hashing after a match); `None` if it does not fit.
pub(super) fn lzf_compress(input: &[u8], limit: usize) -> Option<Vec<u8>> {
    const HSIZE: usize = 1 << 16;
    const MAX_LIT: usize = 32;
    const MAX_OFF: usize = 1 << 13;
    const MAX_REF: usize = (1 << 8) + (1 << 3);
    let len = input.len();
    if len == 0 || limit == 0 {
        return None;
    }
    let idx = |h: u32| ((h >> 8).wrapping_sub(h.wrapping_mul(5)) as usize) & (HSIZE - 1);
    let frst = |p: usize| (u32::from(input[p]) << 8) | u32::from(input[p + 1]);
    let next = |v: u32, p: usize| (v << 8) | u32::from(input[p + 2]);
    // Positions + 1, 0 for an empty slot.
    let mut htab = vec![0usize; HSIZE];
    let mut out: Vec<u8> = Vec::with_capacity(limit);
    // `out[run]` holds the length byte of the literal run being built.
    let mut run = 0;
    out.push(0);
    let mut lit = 0usize;
    let mut ip = 0usize;
    let mut hval = if len >= 2 { frst(0) } else { 0 };
    while len >= 3 && ip < len - 2 {
        hval = next(hval, ip);
        let slot = idx(hval);
        let candidate = htab[slot];
        htab[slot] = ip + 1;
        let matched = candidate > 1 && {
            let r = candidate - 1;
            r < ip && ip - r - 1 < MAX_OFF && input[r..r + 3] == input[ip..ip + 3]
        };
        if matched {
            let r = candidate - 1;
            let off = ip - r - 1;
            let maxlen = (len - ip - 2).min(MAX_REF);
            if out.len() + 3 + 1 >= limit && out.len() - usize::from(lit == 0) + 3 + 1 >= limit {
                return None;
            }
            // Close the literal run (or drop its empty length byte).
            if lit == 0 {
                out.truncate(run);
            } else {
                out[run] = (lit - 1) as u8;
            }
            // liblzf compares 16 bytes unrolled before its bounded loop, so near the end of
            // the input a match may run past `maxlen` (never past the input).
            let mut mlen = 2;
            let mut done = false;
            if maxlen > 16 {
                for _ in 0..16 {
                    mlen += 1;
                    if input[r + mlen] != input[ip + mlen] {
                        done = true;
                        break;
                    }
                }
            }
            if !done {
                loop {
                    mlen += 1;
                    if !(mlen < maxlen && input[r + mlen] == input[ip + mlen]) {
                        break;
                    }
                }
            }
            let l = mlen - 2; // octets - 1
            if l < 7 {
                out.push(((off >> 8) + (l << 5)) as u8);
            } else {
                out.push(((off >> 8) + (7 << 5)) as u8);
                out.push((l - 7) as u8);
            }
            out.push(off as u8);
            run = out.len();
            out.push(0);
            lit = 0;
            ip += 1 + l + 1;
            if ip >= len - 2 {
                break;
            }
            ip -= 2;
            hval = frst(ip);
            hval = next(hval, ip);
            htab[idx(hval)] = ip + 1;
            ip += 1;
            hval = next(hval, ip);
            htab[idx(hval)] = ip + 1;
            ip += 1;
        } else {
            if out.len() >= limit {
                return None;
            }
            lit += 1;
            out.push(input[ip]);
            ip += 1;
            if lit == MAX_LIT {
                out[run] = (lit - 1) as u8;
                lit = 0;
                run = out.len();
                out.push(0);
            }
        }
    }
    if out.len() + 3 > limit {
        return None;
    }
    while ip < len {
        lit += 1;
        out.push(input[ip]);
        ip += 1;
        if lit == MAX_LIT {
            out[run] = (lit - 1) as u8;
            lit = 0;
            run = out.len();
            out.push(0);
        }
    }
    if lit == 0 {
        out.truncate(run);
    } else {
        out[run] = (lit - 1) as u8;
    }
    (out.len() <= limit).then_some(out)
}

/// Expands LZF data that must come to exactly `len` bytes.
pub(super) fn lzf_decompress(input: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    out.try_reserve_exact(len).ok()?;
    let mut ip = 0;
    while ip < input.len() {
        let ctrl = usize::from(input[ip]);
        ip += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            if out.len() + n > len || ip + n > input.len() {
                return None;
            }
            out.extend_from_slice(&input[ip..ip + n]);
            ip += n;
        } else {
            let mut n = ctrl >> 5;
            if n == 7 {
                n += usize::from(*input.get(ip)?);
                ip += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + usize::from(*input.get(ip)?) + 1;
            ip += 1;
            if out.len() + n + 2 > len || back > out.len() {
                return None;
            }
            let start = out.len() - back;
            for k in 0..n + 2 {
                let b = out[start + k];
                out.push(b);
            }
        }
    }
    (out.len() == len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn crc64_is_jones() {
        assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn lzf_round_trips() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for n in [21usize, 100, 1000, 70_000] {
            let text: Vec<u8> = (0..n)
                .map(|i| b"abcab"[i % 5] ^ u8::from(rng.gen_ratio(1, 50)))
                .collect();
            let packed = lzf_compress(&text, text.len()).expect("compressible");
            assert!(packed.len() < text.len());
            assert_eq!(lzf_decompress(&packed, text.len()), Some(text));
        }
        assert_eq!(lzf_compress(b"abcdefghijklmnopqrstuvwxyz", 22), None);
    }
}
