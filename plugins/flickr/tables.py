"""The flickr plugin's own tables, created in the catalog beside Lablr's (photos, tags, splits)."""


def create_tables(db):
    """`downloads` (one row per image file written whole), `searches` (how far each query has paged),
    `image_sizes` (which of Flickr's sizes each photo's image was taken at, and its pixels) and
    `builds` (the bundles `lablr build flickr` saved, and what they were fitted on)."""
    if "downloads" not in db.table_names():
        db["downloads"].create({"photo_id": int, "path": str, "bytes": int, "sha256": str,
                                "downloaded_at": str}, pk="photo_id", foreign_keys=[("photo_id", "photos")])
    if "searches" not in db.table_names():
        db["searches"].create({"query": str, "source": str, "tag": str, "page": int, "pages": int,
                               "found": int, "done": int, "updated_at": str}, pk="query")
    if "image_sizes" not in db.table_names():
        db["image_sizes"].create({"photo_id": int, "size": str, "width": int, "height": int, "url": str},
                                 pk="photo_id", foreign_keys=[("photo_id", "photos")])
    if "builds" not in db.table_names():
        db["builds"].create({"out": str, "fingerprint": str, "own_evaluation": str, "built_at": str}, pk="out")
