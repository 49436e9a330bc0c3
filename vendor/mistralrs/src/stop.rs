//! Stop strings over streamed text: text is released as soon as it cannot
//! be the start of a stop string, and nothing of a stop string is emitted.

/// Watches streamed text for stop strings.
///
/// ```
/// use tektra_inference::StopMatcher;
/// let mut m = StopMatcher::new(vec!["\nUser:".into()]);
/// assert_eq!(m.push("Hello"), (String::from("Hello"), false));
/// assert_eq!(m.push(" there\nUs"), (String::from(" there"), false));
/// assert_eq!(m.push("er: hi"), (String::new(), true));
/// ```
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

impl StopMatcher {
    /// A matcher for these stop strings (empty ones are ignored).
    #[must_use]
    pub fn new(stops: Vec<String>) -> Self {
        StopMatcher {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    /// Adds streamed text; returns what can be shown now and whether a stop
    /// string was reached (then the text before it is the last to show).
    pub fn push(&mut self, piece: &str) -> (String, bool) {
        if self.stops.is_empty() {
            return (piece.to_string(), false);
        }
        self.held.push_str(piece);
        let first_stop = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(at) = first_stop {
            let out = self.held[..at].to_string();
            self.held.clear();
            return (out, true);
        }
        // Keep back the longest tail that could still grow into a stop string.
        let mut keep = 0;
        for stop in &self.stops {
            for len in (1..stop.len()).rev() {
                if len > keep && stop.is_char_boundary(len) && self.held.ends_with(&stop[..len]) {
                    keep = len;
                    break;
                }
            }
        }
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        (out, false)
    }

    /// What is still held back at the end of the generation.
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_stops_everything_passes() {
        let mut m = StopMatcher::new(vec![]);
        assert_eq!(m.push("abc"), ("abc".into(), false));
    }

    #[test]
    fn held_text_is_released_when_it_stops_matching() {
        let mut m = StopMatcher::new(vec!["END".into()]);
        assert_eq!(m.push("xE"), ("x".into(), false));
        assert_eq!(m.push("N"), (String::new(), false));
        assert_eq!(m.push("d"), ("ENd".into(), false));
        assert_eq!(m.push("EN"), (String::new(), false));
        assert_eq!(m.flush(), "EN");
    }

    #[test]
    fn the_earliest_of_several_stops_wins() {
        let mut m = StopMatcher::new(vec!["bb".into(), "a".into()]);
        assert_eq!(m.push("xxbbya"), ("xx".into(), true));
    }
}
