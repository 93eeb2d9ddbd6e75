/// What happened when a change met the stored state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyOutcome<T> {
    /// The change was newer and is now the stored state.
    Applied(T),
    /// The same change was applied before (a redelivery). The stored state is
    /// returned so it can be pushed again: the earlier attempt may have failed
    /// before pushing, and clients drop versions they already have.
    Duplicate(T),
    /// The stored state is newer (or a different change claimed this version):
    /// nothing is written and nothing is pushed.
    Stale { stored_version: u64 },
}

/// How an incoming change relates to the stored product, decided from the stored
/// version and the id of the change that produced it.
pub fn classify(
    incoming_version: u64,
    incoming_change_id: &str,
    stored_version: u64,
    stored_change_id: Option<&str>,
) -> Classification {
    if incoming_version > stored_version {
        Classification::Newer
    } else if incoming_version == stored_version && stored_change_id == Some(incoming_change_id) {
        Classification::SameChange
    } else {
        Classification::Older
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classification {
    Newer,
    SameChange,
    Older,
}

/// The version a new change of a product gets: one past everything already
/// applied or published, so a change still in flight is never reused.
pub fn next_version(applied: u64, published: u64) -> u64 {
    applied.max(published) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_version_is_applied() {
        assert_eq!(classify(5, "c5", 4, Some("c4")), Classification::Newer);
        assert_eq!(classify(1, "c1", 0, None), Classification::Newer);
    }

    #[test]
    fn same_version_same_change_is_a_duplicate() {
        assert_eq!(classify(5, "c5", 5, Some("c5")), Classification::SameChange);
    }

    #[test]
    fn same_version_other_change_is_not_a_duplicate() {
        assert_eq!(classify(5, "other", 5, Some("c5")), Classification::Older);
    }

    #[test]
    fn older_version_is_stale() {
        assert_eq!(classify(3, "c3", 5, Some("c5")), Classification::Older);
    }

    #[test]
    fn next_version_skips_in_flight_changes() {
        assert_eq!(next_version(0, 0), 1);
        assert_eq!(next_version(4, 6), 7);
        assert_eq!(next_version(6, 4), 7);
    }
}
