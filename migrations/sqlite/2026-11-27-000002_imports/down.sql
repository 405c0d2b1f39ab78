DROP TABLE import_problems;
DROP TABLE import_parts;
DROP TABLE imports;
