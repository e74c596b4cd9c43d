"""The Alpaca-compatible surface, mounted under `/alpaca`: one more adapter on the native API.

alpaca-py (`url_override`), ccxt's `alpaca` (`urls.api`) and Freqtrade through ccxt point at
`http://host:port/alpaca`. The routes send the native API's commands (through its own route functions)
and read the engine's views and the read models; docs/alpaca.md has the mapping rules.

`mount` adds the routes to the app; `hot` is the order entry on the fast path (apart, because the
fast path is imported by the WebSocket package, which `mount` imports).
"""
