"""Pure placement decisions: which helper runs a task (views of helpers,
filters and scorers, the fast path over a whole fleet) and which result
counts (outcome). Nothing here talks to MongoDB, Flask or HTTP."""
