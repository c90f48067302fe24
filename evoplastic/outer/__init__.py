"""Outer optimisers over θ: evolution strategies and the paper's Adam loop, one interface (base.OuterLoop);
select.make_outer picks the configured one."""
