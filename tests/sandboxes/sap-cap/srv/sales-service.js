// SalesService: CAP's generic handlers, plus Gateway's answers where CAP on
// SQLite differs in a way a connector would act on:
// - a duplicate key is HTTP 500 SQLITE_CONSTRAINT_PRIMARYKEY in CAP; Gateway
//   (and any connector written against it) expects 409 Conflict;
// - a create without its key is HTTP 500 SQLITE_CONSTRAINT_NOTNULL in CAP; a
//   missing value is the client's fault (400), and a 500 would make a
//   connector retry a request that can never succeed.
'use strict'

const cds = require('@sap/cds')

function isDuplicateKey(err) {
  return (
    /^SQLITE_CONSTRAINT_(PRIMARYKEY|UNIQUE)$/.test(err.code || '') ||
    /UNIQUE constraint failed/.test(err.message || '')
  )
}

function isMissingValue(err) {
  return err.code === 'SQLITE_CONSTRAINT_NOTNULL' || /NOT NULL constraint failed/.test(err.message || '')
}

module.exports = cds.service.impl(function () {
  this.on('error', (err) => {
    if (!err) return
    if (isDuplicateKey(err)) {
      err.status = 409
      err.statusCode = 409
      err.code = 'ENTITY_ALREADY_EXISTS'
      err.message = 'Entity already exists'
    } else if (isMissingValue(err)) {
      // "NOT NULL constraint failed: gluefleet_sales_BusinessPartners.ID"
      const column = /NOT NULL constraint failed: \S+\.(\w+)/.exec(err.message || '')
      err.status = 400
      err.statusCode = 400
      err.code = 'ASSERT_MANDATORY'
      err.message = 'Provide the missing value.'
      if (column) err.target = column[1]
    }
  })
})
