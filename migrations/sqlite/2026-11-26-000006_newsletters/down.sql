DROP TABLE deliveries;
DROP TABLE newsletters;
DROP TABLE segments;
