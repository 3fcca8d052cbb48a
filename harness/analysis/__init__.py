"""Numbers derived from run tables: scaling exponents, crossovers, Pareto fronts."""
