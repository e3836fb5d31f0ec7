-- Penguins ready to learn from: the rows with measurements (342 of 344), a stable id from each
-- row's content (so the classifier's seeded split keeps a penguin on its side when rows are
-- added), and sex left NULL where it was not recorded (the classifier reads NULL as a category of
-- its own instead of dropping the penguin).
-- strata: expect.not_null = ["penguin_id", "species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]
-- strata: expect.unique = ["penguin_id"]
SELECT
    substr(
        md5(concat_ws('|', species, island, bill_length_mm, bill_depth_mm, flipper_length_mm,
                      body_mass_g, coalesce(sex, 'NA'), year)),
        1, 16
    ) AS penguin_id,
    species,
    island,
    bill_length_mm,
    bill_depth_mm,
    flipper_length_mm,
    body_mass_g,
    sex,
    year
FROM bronze.penguins
WHERE bill_length_mm IS NOT NULL
  AND bill_depth_mm IS NOT NULL
  AND flipper_length_mm IS NOT NULL
  AND body_mass_g IS NOT NULL
