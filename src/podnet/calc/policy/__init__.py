"""podnet.calc.policy: Kubernetes NetworkPolicy decided purely: the predicate, the compiled
form, its index, the partial-sync planner, truth tables and describe."""
