"""Social-media drafts: per-platform posts that fit, a review workflow, and an export.

- `counting`: length as each platform counts it.
- `shortening`: `fit` shortens a post's parts until it fits its platform's limit.
- `drafts`: generation during `build` (`sync_drafts`) and the never-lose-an-edit rules.
- `review`: list, show, approve, reject, take a suggestion; the review page.
- `export`: approved drafts as a Buffer-compatible CSV or as JSON.
"""
