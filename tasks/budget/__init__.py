"""Money: reservations per request, claims on the store's shared ledger, what a period spent."""
