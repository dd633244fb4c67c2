"""Job services: create and kill (lifecycle), the sync (reconciler), the finalize trigger,
logs, and a create's inputs. They act through the cloud adapters on the model; they never
import the HTTP layer."""
