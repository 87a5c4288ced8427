//! add-image: install kiwi OEM PXE outputs into the catalog.
