//! The backend trait.

use crate::{BmcError, BmcTarget, BootDevice, BootOptions, PowerAction, PowerState};
use async_trait::async_trait;

/// A way of talking to BMCs: ipmitool ([`crate::IpmiTool`]) today, Redfish
/// later. One value serves any number of BMCs; each call names its target.
///
/// Contract for implementations:
/// - [`PowerAction::Cycle`] on a chassis that is off powers it on: callers
///   ask for a cycle and never read the power state first (the backend knows
///   how its BMCs refuse a cycle of an off chassis, and reads the state only
///   if it must).
/// - [`PowerAction::On`]/[`PowerAction::Off`] on a chassis already in that
///   state succeed.
/// - Errors are [`BmcError`]s classified by cause, secrets never in them.
#[async_trait]
pub trait PowerControl: Send + Sync {
    /// Whether the chassis is powered.
    async fn power_status(&self, target: &BmcTarget) -> Result<PowerState, BmcError>;

    /// Change the chassis power.
    async fn power(&self, target: &BmcTarget, action: PowerAction) -> Result<(), BmcError>;

    /// Boot from `device` next time (every time with
    /// [`BootOptions::persistent`]), in UEFI mode with [`BootOptions::uefi`].
    async fn set_boot_device(
        &self,
        target: &BmcTarget,
        device: BootDevice,
        options: BootOptions,
    ) -> Result<(), BmcError>;
}
