"""The run lifecycle: target, watchers, Locust load, stop rules, fault injection, live view."""
