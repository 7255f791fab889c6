"""The Dash web app. Presents; the domain lives in backend."""
