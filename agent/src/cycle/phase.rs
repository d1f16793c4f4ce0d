//! The steps of a pass as an explicit state machine with checked transitions.

/// Where a pass is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Nothing done yet.
    Start,
    /// A manifest is at hand (fresh or cached).
    Pulled,
    /// Every identity has an action.
    Decided,
    /// New certificates are signed and verified against etcd; nothing installed yet.
    Issued,
    /// Files are installed and rendered; the journal holds their receipts.
    Installed,
    /// Affected units were restarted (or rolled back and restarted again).
    Restarted,
    /// The report was sent (or its failure noted).
    Reported,
    /// The pass is over.
    Done,
}

/// A transition the pass does not allow: a bug, reported instead of acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cycle cannot go from {from:?} to {to:?}")]
pub struct PhaseError {
    pub from: Phase,
    pub to: Phase,
}

impl Phase {
    /// The step after this one.
    fn successor(self) -> Phase {
        match self {
            Self::Start => Self::Pulled,
            Self::Pulled => Self::Decided,
            Self::Decided => Self::Issued,
            Self::Issued => Self::Installed,
            Self::Installed => Self::Restarted,
            Self::Restarted => Self::Reported,
            Self::Reported | Self::Done => Self::Done,
        }
    }

    /// Moves to `to`: the next step, or `Done` from any step but `Installed` (files on disk
    /// whose units were not handled must be restarted or rolled back first).
    pub fn advance(&mut self, to: Phase) -> Result<(), PhaseError> {
        let allowed = to == self.successor() || (to == Self::Done && *self != Self::Installed);
        if !allowed || *self == Self::Done {
            return Err(PhaseError { from: *self, to });
        }
        *self = to;
        Ok(())
    }

    /// Whether files of this pass may be on disk without their units handled.
    pub fn installing(self) -> bool {
        self == Self::Installed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_forward_only_and_never_leaves_an_install_unhandled() {
        let mut phase = Phase::Start;
        for to in [
            Phase::Pulled,
            Phase::Decided,
            Phase::Issued,
            Phase::Installed,
        ] {
            assert_eq!(phase.advance(to), Ok(()));
        }
        assert!(phase.installing());
        assert!(
            phase.advance(Phase::Done).is_err(),
            "installed files must be handled"
        );
        assert!(phase.advance(Phase::Pulled).is_err());
        assert_eq!(phase.advance(Phase::Restarted), Ok(()));
        assert_eq!(phase.advance(Phase::Done), Ok(()));
        assert!(phase.advance(Phase::Done).is_err());
        let mut early = Phase::Pulled;
        assert!(
            early.advance(Phase::Issued).is_err(),
            "no skipping the decision"
        );
        assert_eq!(early.advance(Phase::Done), Ok(()));
    }
}
