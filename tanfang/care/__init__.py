"""Care actions that follow a visit: benefits, hazards and service needs, tracked to the end."""
