using { gluefleet.sales as db } from '../db/schema';

// Served at /odata/v4/sales (V4) and, through the odata-v2-adapter plugin,
// at /odata/v2/sales (V2).
@path: 'sales'
service SalesService {
  entity BusinessPartners as projection on db.BusinessPartners;
  entity SalesOrders      as projection on db.SalesOrders;
}

// The element-level form is the one CAP honours (the entity-level
// `@odata.etag: modifiedAt` is ignored).
annotate SalesService.BusinessPartners with { modifiedAt @odata.etag; }
annotate SalesService.SalesOrders      with { modifiedAt @odata.etag; }
