//! Places buffers with known lifetimes in one arena: two buffers share
//! bytes only if their lifetimes do not overlap. The arena's size is then
//! exact for the placement made, which the generated constants report.

/// A buffer to place: `len` elements, live from step `first` to step `last`
/// (inclusive).
#[derive(Clone, Copy, Debug)]
pub struct Request {
    pub len: usize,
    pub first: usize,
    pub last: usize,
}

/// Offsets for `requests` (in their order) and the arena length.
///
/// Greedy first fit, largest buffers first (ties: earliest first): each
/// buffer goes at the lowest offset where it overlaps no placed buffer that
/// is live at the same time. Deterministic.
pub fn place(requests: &[Request]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(requests[i].len), requests[i].first, i));
    let mut offsets = vec![0usize; requests.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut size = 0usize;
    for i in order {
        let r = requests[i];
        // Memory ranges of placed buffers live at the same time, by start.
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| requests[j].first <= r.last && r.first <= requests[j].last)
            .map(|&j| (offsets[j], offsets[j].saturating_add(requests[j].len)))
            .collect();
        busy.sort_unstable();
        let mut offset = 0usize;
        for (start, end) in busy {
            if offset.saturating_add(r.len) <= start {
                break;
            }
            offset = offset.max(end);
        }
        offsets[i] = offset;
        size = size.max(offset.saturating_add(r.len));
        placed.push(i);
    }
    (offsets, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(len: usize, first: usize, last: usize) -> Request {
        Request { len, first, last }
    }

    /// No two buffers live at the same time share an element.
    fn check(requests: &[Request], offsets: &[usize], size: usize) {
        for (i, a) in requests.iter().enumerate() {
            assert!(offsets[i] + a.len <= size);
            for (j, b) in requests.iter().enumerate().skip(i + 1) {
                let together = a.first <= b.last && b.first <= a.last;
                let apart = offsets[i] + a.len <= offsets[j] || offsets[j] + b.len <= offsets[i];
                assert!(
                    !together || apart || a.len == 0 || b.len == 0,
                    "{i} and {j} overlap"
                );
            }
        }
    }

    #[test]
    fn a_path_ping_pongs() {
        // Four values of a chain: each read by the next step.
        let r = [req(10, 0, 1), req(20, 1, 2), req(5, 2, 3), req(8, 3, 4)];
        let (offsets, size) = place(&r);
        check(&r, &offsets, size);
        assert_eq!(size, 30, "the largest pair alive at once");
    }

    #[test]
    fn buffers_alive_together_never_share() {
        let mut state = 12345u64;
        for _ in 0..200 {
            let count = (state % 12) as usize + 1;
            let r: Vec<Request> = (0..count)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let first = (state >> 33) as usize % 10;
                    let span = (state >> 20) as usize % 5;
                    let len = (state >> 40) as usize % 50;
                    req(len, first, first + span)
                })
                .collect();
            let (offsets, size) = place(&r);
            check(&r, &offsets, size);
            let sum: usize = r.iter().map(|r| r.len).sum();
            assert!(size <= sum);
        }
    }
}
