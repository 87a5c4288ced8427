//! The backend trait and the per-BMC handle built on it.

use crate::{BmcError, BmcTarget, BootDevice, BootOptions, PowerAction, PowerState};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// A way of talking to BMCs: ipmitool ([`crate::IpmiTool`]) today, Redfish
/// later. One value serves any number of BMCs; each call names its target.
///
/// Contract for implementations:
/// - [`PowerAction::Cycle`] on a chassis that is off powers it on.
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

    /// Power off, wait `delay`, power on: the cold restart of a node whose
    /// console stalled. Dropping the future during the wait leaves the node
    /// off.
    async fn cold_restart(&self, target: &BmcTarget, delay: Duration) -> Result<(), BmcError> {
        self.power(target, PowerAction::Off).await?;
        tracing::debug!(bmc = %target.label(), ?delay, "cold restart: waiting before power on");
        tokio::time::sleep(delay).await;
        self.power(target, PowerAction::On).await
    }
}

/// One BMC and the backend that drives it: the handle a provisioning task
/// keeps for its node.
#[derive(Clone)]
pub struct Bmc {
    control: Arc<dyn PowerControl>,
    target: BmcTarget,
}

impl std::fmt::Debug for Bmc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bmc")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Bmc {
    pub fn new(control: Arc<dyn PowerControl>, target: BmcTarget) -> Self {
        Self { control, target }
    }

    pub fn target(&self) -> &BmcTarget {
        &self.target
    }

    pub fn control(&self) -> &Arc<dyn PowerControl> {
        &self.control
    }

    pub async fn power_status(&self) -> Result<PowerState, BmcError> {
        self.control.power_status(&self.target).await
    }

    pub async fn power(&self, action: PowerAction) -> Result<(), BmcError> {
        self.control.power(&self.target, action).await
    }

    pub async fn power_on(&self) -> Result<(), BmcError> {
        self.power(PowerAction::On).await
    }

    pub async fn power_off(&self) -> Result<(), BmcError> {
        self.power(PowerAction::Off).await
    }

    /// Cycle the power; an off chassis is powered on.
    pub async fn power_cycle(&self) -> Result<(), BmcError> {
        self.power(PowerAction::Cycle).await
    }

    pub async fn reset(&self) -> Result<(), BmcError> {
        self.power(PowerAction::Reset).await
    }

    pub async fn set_boot_device(
        &self,
        device: BootDevice,
        options: BootOptions,
    ) -> Result<(), BmcError> {
        self.control
            .set_boot_device(&self.target, device, options)
            .await
    }

    /// Power off, wait `delay`, power on.
    pub async fn cold_restart(&self, delay: Duration) -> Result<(), BmcError> {
        self.control.cold_restart(&self.target, delay).await
    }
}
