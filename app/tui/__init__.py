"""The Textual dashboard. Imported only when the dashboard starts (see fleettop.cli)."""

# What FleetApp.call_service returns when the call failed (and the error was shown),
# since None is a legitimate answer of several service methods.
FAILED = object()
