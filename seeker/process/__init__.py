"""A running seeker: the SeekerServer that wires stores, control and API
together, and the one-process stack of `seeker up`."""
