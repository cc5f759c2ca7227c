"""Data: the catalog, importing sources, selecting and splitting, decoding images, the prepared-image cache."""
