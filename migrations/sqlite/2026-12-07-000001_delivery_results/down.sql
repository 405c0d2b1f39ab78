DROP TABLE delivery_results;
