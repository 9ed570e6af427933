"""``persona dashboard``: a read-only Streamlit app over the warehouse (docs/dashboard.md).

``source`` finds the warehouse and reads it without ever taking DuckDB's write lock; ``ui``
holds what every page shares (a chart with its one-line explanation and its SQL, empty states,
an error boundary with no stack traces); ``style`` the colours and number formats; ``views/``
one script per page, run by ``app.py``'s navigation.
"""
