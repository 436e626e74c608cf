//! The entity and device registry seam (HA's `PermissionLookup`).

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

/// What the engine needs to know about entities and devices to answer `device_ids` and
/// `area_ids` rules: Home Assistant's entity and device registries, reduced to three
/// questions.
///
/// Registries change while a user's permissions stay cached, so a [`PolicyPermissions`]
/// asks its lookup at check time; only the policy is compiled ahead.
///
/// Implemented for references, `Box`, `Rc` and `Arc` of any implementation, so one
/// registry can be shared by many checkers.
///
/// [`PolicyPermissions`]: super::PolicyPermissions
pub trait EntityLookup {
    /// The `device_id` of the entity's registry entry; `None` when the entity is not in
    /// the registry or belongs to no device.
    fn entity_device(&self, entity_id: &str) -> Option<&str>;

    /// The `area_id` assigned to the device itself; `None` when the device is unknown or
    /// has no area.
    fn device_area(&self, device_id: &str) -> Option<&str>;

    /// The device this device is connected through (`via_device_id`); `None` when the
    /// device is unknown or has no parent.
    fn device_parent(&self, device_id: &str) -> Option<&str>;
}

macro_rules! forward_lookup {
    ($($ty:ty),*) => {$(
        impl<T: EntityLookup + ?Sized> EntityLookup for $ty {
            fn entity_device(&self, entity_id: &str) -> Option<&str> {
                (**self).entity_device(entity_id)
            }

            fn device_area(&self, device_id: &str) -> Option<&str> {
                (**self).device_area(device_id)
            }

            fn device_parent(&self, device_id: &str) -> Option<&str> {
                (**self).device_parent(device_id)
            }
        }
    )*};
}

forward_lookup!(&T, Box<T>, Rc<T>, Arc<T>);

/// The area an `area_ids` rule sees for `device_id`: the device's own area or, when it
/// has none, its parent's (`via_device_id`) own area — one level, as Home Assistant
/// 2026 does. The entity's own area override is never consulted.
pub(crate) fn effective_device_area<'a, L: EntityLookup + ?Sized>(
    lookup: &'a L,
    device_id: &str,
) -> Option<&'a str> {
    lookup.device_area(device_id).or_else(|| {
        lookup
            .device_parent(device_id)
            .and_then(|parent| lookup.device_area(parent))
    })
}

/// A lookup that knows no entity and no device: `device_ids` and `area_ids` rules
/// never match. What Home Assistant's tests pass as `perm_lookup=None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoRegistry;

impl EntityLookup for NoRegistry {
    fn entity_device(&self, _entity_id: &str) -> Option<&str> {
        None
    }

    fn device_area(&self, _device_id: &str) -> Option<&str> {
        None
    }

    fn device_parent(&self, _device_id: &str) -> Option<&str> {
        None
    }
}

/// An entity registry entry, reduced to what permissions care about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntityEntry {
    /// The device the entity belongs to.
    pub device_id: Option<String>,
    /// The entity's own area override. Kept for completeness; `area_ids` rules ignore it
    /// and use the device's area, as Home Assistant does.
    pub area_id: Option<String>,
}

/// A device registry entry, reduced to what permissions care about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceEntry {
    /// The area the device is assigned to.
    pub area_id: Option<String>,
    /// The device this one is connected through (a hub, a bridge).
    pub via_device_id: Option<String>,
}

/// A plain in-memory entity and device registry.
///
/// ```
/// use latch_models::permissions::{EntityLookup, InMemoryRegistry};
///
/// let registry = InMemoryRegistry::new()
///     .with_entity("light.kitchen", Some("lamp"))
///     .with_device("lamp", None, Some("hub"))
///     .with_device("hub", Some("kitchen"), None);
/// assert_eq!(registry.entity_device("light.kitchen"), Some("lamp"));
/// assert_eq!(registry.device_parent("lamp"), Some("hub"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InMemoryRegistry {
    entities: HashMap<String, EntityEntry>,
    devices: HashMap<String, DeviceEntry>,
}

impl InMemoryRegistry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Builder: registers `entity_id` on `device_id` (or on no device).
    #[must_use]
    pub fn with_entity(mut self, entity_id: &str, device_id: Option<&str>) -> Self {
        self.insert_entity(
            entity_id,
            EntityEntry {
                device_id: device_id.map(str::to_owned),
                area_id: None,
            },
        );
        self
    }

    /// Builder: registers `device_id` in `area_id`, connected through `via_device_id`.
    #[must_use]
    pub fn with_device(
        mut self,
        device_id: &str,
        area_id: Option<&str>,
        via_device_id: Option<&str>,
    ) -> Self {
        self.insert_device(
            device_id,
            DeviceEntry {
                area_id: area_id.map(str::to_owned),
                via_device_id: via_device_id.map(str::to_owned),
            },
        );
        self
    }

    /// Adds or replaces an entity entry.
    pub fn insert_entity(&mut self, entity_id: &str, entry: EntityEntry) {
        self.entities.insert(entity_id.to_owned(), entry);
    }

    /// Adds or replaces a device entry.
    pub fn insert_device(&mut self, device_id: &str, entry: DeviceEntry) {
        self.devices.insert(device_id.to_owned(), entry);
    }

    /// Removes an entity entry, returning it.
    pub fn remove_entity(&mut self, entity_id: &str) -> Option<EntityEntry> {
        self.entities.remove(entity_id)
    }

    /// Removes a device entry, returning it. Entities keep pointing at the id.
    pub fn remove_device(&mut self, device_id: &str) -> Option<DeviceEntry> {
        self.devices.remove(device_id)
    }

    /// The entry of `entity_id`.
    #[must_use]
    pub fn entity(&self, entity_id: &str) -> Option<&EntityEntry> {
        self.entities.get(entity_id)
    }

    /// Mutable access to the entry of `entity_id`.
    pub fn entity_mut(&mut self, entity_id: &str) -> Option<&mut EntityEntry> {
        self.entities.get_mut(entity_id)
    }

    /// The entry of `device_id`.
    #[must_use]
    pub fn device(&self, device_id: &str) -> Option<&DeviceEntry> {
        self.devices.get(device_id)
    }

    /// Mutable access to the entry of `device_id`.
    pub fn device_mut(&mut self, device_id: &str) -> Option<&mut DeviceEntry> {
        self.devices.get_mut(device_id)
    }
}

impl EntityLookup for InMemoryRegistry {
    fn entity_device(&self, entity_id: &str) -> Option<&str> {
        self.entities.get(entity_id)?.device_id.as_deref()
    }

    fn device_area(&self, device_id: &str) -> Option<&str> {
        self.devices.get(device_id)?.area_id.as_deref()
    }

    fn device_parent(&self, device_id: &str) -> Option<&str> {
        self.devices.get(device_id)?.via_device_id.as_deref()
    }
}
