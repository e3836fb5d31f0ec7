-- How many penguins of each species live on each island, and their mean measurements: the
-- separation the classifier learns, in numbers.
SELECT
    species,
    island,
    count(*) AS penguins,
    round(avg(bill_length_mm), 1) AS mean_bill_length_mm,
    round(avg(bill_depth_mm), 1) AS mean_bill_depth_mm,
    round(avg(flipper_length_mm), 1) AS mean_flipper_length_mm,
    round(avg(body_mass_g), 0) AS mean_body_mass_g
FROM silver.penguins
GROUP BY species, island
ORDER BY species, island
